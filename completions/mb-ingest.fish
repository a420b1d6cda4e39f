complete -c mb-ingest -l db -d 'SQLite database file, or a PostgreSQL connection string (postgres://HOST/DB, or libpq `host=... dbname=...`; the password from PGPASSFILE or ~/.pgpass, never here) [default: /var/lib/mb/usage.db for root, $XDG_DATA_HOME/mb/usage.db otherwise, or `db` in mb.toml]' -r -F
complete -c mb-ingest -l config -d 'Configuration file [default: /etc/mb/mb.toml or $XDG_CONFIG_HOME/mb/mb.toml; absent means built-in defaults]' -r -F
complete -c mb-ingest -l spool -d 'Ingest every complete *.jsonl file in DIR, then move it to DIR/done/' -r -F
complete -c mb-ingest -l rejects -d 'Also append rejected lines to FILE (each after a `# SOURCE:LINE: reason` comment), to fix and re-ingest' -r -F
complete -c mb-ingest -l summary -d 'Summary format on stderr' -r -f -a "text\t'`read N, inserted N, duplicates N, conflicts N, rejected N`'
json\t'One JSON object with the same counts'"
complete -c mb-ingest -l batch -d 'Lines per transaction' -r
complete -c mb-ingest -l delete -d 'With --spool: delete ingested files instead of moving them to done/'
complete -c mb-ingest -l dry-run -d 'Validate and count without writing to the database or the spool (--rejects still collects the rejected lines)'
complete -c mb-ingest -s q -l quiet -d 'Do not print the summary line (nor the progress bar)'
complete -c mb-ingest -s h -l help -d 'Print help (see more with \'--help\')'
complete -c mb-ingest -s V -l version -d 'Print version'
