complete -c mb-dashboard -l db -d 'SQLite database file, or a PostgreSQL connection string (postgres://HOST/DB, or libpq `host=... dbname=...`; the password from PGPASSFILE or ~/.pgpass, never here) [default: /var/lib/mb/usage.db for root, $XDG_DATA_HOME/mb/usage.db otherwise, or `db` in mb.toml]' -r -F
complete -c mb-dashboard -l config -d 'Configuration file [default: /etc/mb/mb.toml or $XDG_CONFIG_HOME/mb/mb.toml; absent means built-in defaults]' -r -F
complete -c mb-dashboard -l host -d 'Address to listen on (an IP address; `localhost` means 127.0.0.1)' -r
complete -c mb-dashboard -l port -d 'Port to listen on (0: any free port, printed on stderr)' -r
complete -c mb-dashboard -l customer -d 'Serve only this customer, whatever a request asks for' -r
complete -c mb-dashboard -l token-file -d 'File holding the access token, refused unless only its owner can read it (chmod 600) [default: $MB_DASHBOARD_TOKEN]' -r -F
complete -c mb-dashboard -l header-timeout -d 'Seconds a client has to send a whole request header; also the idle timeout of a kept-alive connection' -r
complete -c mb-dashboard -l max-connections -d 'Most connections open at once (lowered to fit the open-files limit); at the cap the oldest idle or half-open one makes room' -r
complete -c mb-dashboard -l allow-remote -d 'Allow a non-loopback --host (needs an access token too)'
complete -c mb-dashboard -s h -l help -d 'Print help (see more with \'--help\')'
complete -c mb-dashboard -s V -l version -d 'Print version'
