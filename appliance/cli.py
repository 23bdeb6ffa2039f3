"""The `nube` command: thin argument parsing that calls into the appliance."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from appliance import __version__
from appliance.config import load_config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="nube", description="Nube: a private cloud in one process"
    )
    parser.add_argument("--version", action="version", version=f"nube {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the cloud (APIs on --port, S3 on --s3-port)")
    serve.add_argument("--data-dir", type=Path, help="state directory (default /var/lib/nube)")
    serve.add_argument("--bind", help="address to listen on (default 0.0.0.0)")
    serve.add_argument("--port", type=int, help="API and console port (default 8080)")
    serve.add_argument("--s3-port", type=int, help="S3 port (default 9000)")
    serve.add_argument("--public-url", help="base URL advertised in the catalog")
    serve.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    serve.add_argument(
        "--public-cidr",
        help="CIDR of the `public` network made at the first start; the host takes its first "
        "address (default 172.24.4.0/24; empty: no default networks)",
    )

    image = sub.add_parser("image", help="image helpers")
    image_sub = image.add_subparsers(dest="image_command", required=True)
    default = image_sub.add_parser(
        "import-default", help="upload the nube-tiny guest as public images (needs a running Nube)"
    )
    default.add_argument(
        "--data-dir", type=Path, help="where admin-openrc.sh is, if OS_* are unset"
    )
    default.add_argument("--from", dest="build_dir", type=Path, help="a nube-tiny build directory")
    default.add_argument(
        "--check", action="store_true", help="only tell (exit 0) whether this build is imported"
    )

    keys = sub.add_parser("rotate-keys", help="add a new token signing key (old tokens stay valid)")
    keys.add_argument("--data-dir", type=Path)

    fsck = sub.add_parser(
        "fsck", help="check object rows against blob files (nube serve must be stopped)"
    )
    fsck.add_argument("--data-dir", type=Path)
    fsck.add_argument(
        "--repair", action="store_true", help="drop broken rows, remove orphans and temp files"
    )

    tui = sub.add_parser("tui", help="terminal dashboard over the APIs (clouds.yaml or OS_* env)")
    tui.add_argument("--cloud", help="a cloud in clouds.yaml (default: OS_CLOUD, else OS_* env)")

    clear = sub.add_parser(
        "clear-datapath",
        help="remove this cloud's bridges, namespaces, dnsmasq and nft tables (nube serve must be "
        "stopped; its next start rebuilds them from the database)",
    )
    clear.add_argument("--data-dir", type=Path)

    args = parser.parse_args(argv)
    if args.command == "tui":
        from tui.main import main as tui_main

        return tui_main(args.cloud)
    try:
        config = load_config(
            args.data_dir,
            {
                "bind": getattr(args, "bind", None),
                "port": getattr(args, "port", None),
                "s3_port": getattr(args, "s3_port", None),
                "public_url": getattr(args, "public_url", None),
                "log_level": getattr(args, "log_level", None),
                "public_cidr": getattr(args, "public_cidr", None),
            },
        )
    except (ValueError, TypeError, OSError) as exc:
        print(f"nube: bad configuration: {exc}", file=sys.stderr)
        return 2
    if args.command == "serve":
        from appliance.server import serve as run

        return run(config)
    if args.command == "image" and args.image_command == "import-default":
        from appliance.images.default import main as import_default

        return import_default(config.data_dir, args.build_dir, check_only=args.check)
    if args.command == "fsck":
        from appliance.objects.fsck import main as fsck_main

        return fsck_main(config.data_dir, config.db_path, config.blobs_dir, args.repair)
    if args.command == "clear-datapath":
        from appliance.network.datapath import clear

        return clear(config.data_dir)
    if args.command == "rotate-keys":
        from appliance.identity.tokens import KeyRing

        KeyRing(config.keys_dir / "fernet").rotate()
        print("nube: new token key added; restart nube serve to sign with it")
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
