# Flattens a JSON document into "path<TAB>value" lines, one per scalar, for a shell to grep:
#   {"hostname": "t1", "public_keys": {"k": "ssh-ed25519 AAA..."}, "keys": [{"data": "..."}]}
#   hostname	t1
#   public_keys/k	ssh-ed25519 AAA...
#   keys/0/data	...
# String escapes are decoded, except that \n and \t stay as two characters to keep one line
# per value; \u escapes outside ASCII become "?". No validation: this reads OpenStack's metadata.

function skip_space() {
    while (pos <= len && index(" \t\r\n", substr(doc, pos, 1)))
        pos++
}

function hex_value(h,    i, v) {
    v = 0
    for (i = 1; i <= length(h); i++)
        v = v * 16 + index("0123456789abcdef", tolower(substr(h, i, 1))) - 1
    return v
}

function read_string(    out, c, code) {
    pos++
    out = ""
    while (pos <= len) {
        c = substr(doc, pos, 1)
        if (c == "\"") {
            pos++
            return out
        }
        if (c == "\\") {
            pos++
            c = substr(doc, pos, 1)
            if (c == "n") c = "\\n"
            else if (c == "t") c = "\\t"
            else if (c == "r" || c == "b" || c == "f") c = ""
            else if (c == "u") {
                code = hex_value(substr(doc, pos + 1, 4))
                pos += 4
                c = (code >= 32 && code < 127) ? sprintf("%c", code) : "?"
            }
        }
        out = out c
        pos++
    }
    return out
}

function join(path, key) {
    return path == "" ? key : path "/" key
}

function read_value(path,    c, key, n, rest) {
    skip_space()
    c = substr(doc, pos, 1)
    if (c == "{") {
        pos++
        skip_space()
        if (substr(doc, pos, 1) == "}") {
            pos++
            return
        }
        while (pos <= len) {
            skip_space()
            key = read_string()
            skip_space()
            pos++
            read_value(join(path, key))
            skip_space()
            c = substr(doc, pos++, 1)
            if (c != ",")
                return
        }
    } else if (c == "[") {
        pos++
        skip_space()
        if (substr(doc, pos, 1) == "]") {
            pos++
            return
        }
        for (n = 0; pos <= len; n++) {
            read_value(join(path, n))
            skip_space()
            c = substr(doc, pos++, 1)
            if (c != ",")
                return
        }
    } else if (c == "\"") {
        print path "\t" read_string()
    } else {
        rest = substr(doc, pos)
        if (match(rest, /^[^],} \t\r\n]+/)) {
            print path "\t" substr(rest, 1, RLENGTH)
            pos += RLENGTH
        } else {
            pos = len + 1
        }
    }
}

{ doc = doc $0 "\n" }

END {
    len = length(doc)
    pos = 1
    read_value("")
}
