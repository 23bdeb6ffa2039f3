"""HTTP machinery shared by every API: errors per dialect, request ids and logs, auth, versions, paging."""
