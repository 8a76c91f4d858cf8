"""The broker's configuration: accounts, ACL, TLS certificates and the fe-server subcommands for them."""
