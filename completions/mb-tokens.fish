# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_mb_tokens_global_optspecs
    string join \n format= state= prices= config= customer= vm= key-map= spool= client-key= h/help V/version
end

function __fish_mb_tokens_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_mb_tokens_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_mb_tokens_using_subcommand
    set -l cmd (__fish_mb_tokens_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c mb-tokens -n "__fish_mb_tokens_needs_command" -l format -d 'Input format, instead of detecting it per file' -r -f -a "usage-queue\t'CLIProxyAPI usage-queue records, one JSON object per line'
usage-snapshot\t'CLIProxyAPI\'s legacy /v0/management/usage snapshot (or export)'
request-log\t'A CLIProxyAPI request-log file (request-log: true)'
provider\t'Raw provider responses (Anthropic, OpenAI, Gemini), one JSON per line or SSE `data:` lines'"
complete -c mb-tokens -n "__fish_mb_tokens_needs_command" -l state -d 'Remember per file (device, inode, first bytes) the offset reached, and read only what is new' -r -F
complete -c mb-tokens -n "__fish_mb_tokens_needs_command" -l prices -d 'Prices merged over the built-in table (LiteLLM model_prices_and_context_window.json format); repeatable' -r -F
complete -c mb-tokens -n "__fish_mb_tokens_needs_command" -l config -d 'Configuration file [default: /etc/mb/mb.toml or $XDG_CONFIG_HOME/mb/mb.toml]' -r -F
complete -c mb-tokens -n "__fish_mb_tokens_needs_command" -l customer -d 'Customer of the usage (when no --key-map entry applies)' -r
complete -c mb-tokens -n "__fish_mb_tokens_needs_command" -l vm -d 'VM of the usage [default: the host name]' -r
complete -c mb-tokens -n "__fish_mb_tokens_needs_command" -l key-map -d 'CSV of `client key or its hash,customer_id,vm_id`, for a proxy serving several customers' -r -F
complete -c mb-tokens -n "__fish_mb_tokens_needs_command" -l spool -d 'Write the lines as one complete file into DIR (temp file, fsync, rename) for `mb-ingest --spool DIR`, instead of stdout; --state is saved only once that file is durable' -r -F
complete -c mb-tokens -n "__fish_mb_tokens_needs_command" -l client-key -d 'Secret keying the `client` hash, created 0600 on first use [default: `client_key` in mb.toml, else <state_dir>/client.key: /var/lib/mb/client.key for root, $XDG_STATE_HOME/mb/client.key otherwise]' -r -F
complete -c mb-tokens -n "__fish_mb_tokens_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c mb-tokens -n "__fish_mb_tokens_needs_command" -s V -l version -d 'Print version'
complete -c mb-tokens -n "__fish_mb_tokens_needs_command" -a "prices" -d 'List the effective price table (built-in plus --prices), USD per million tokens'
complete -c mb-tokens -n "__fish_mb_tokens_needs_command" -a "pull" -d 'Drain CLIProxyAPI\'s usage queue into a JSONL file, durably (fsync before each next pull)'
complete -c mb-tokens -n "__fish_mb_tokens_needs_command" -a "reprice" -d 'Price stored usage that was stored unpriced, now that the price table covers its model'
complete -c mb-tokens -n "__fish_mb_tokens_needs_command" -a "client-hash" -d 'Print the keyed `client` hash of proxy keys read from standard input, one per line (for --key-map)'
complete -c mb-tokens -n "__fish_mb_tokens_needs_command" -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c mb-tokens -n "__fish_mb_tokens_using_subcommand prices" -l prices -d 'Prices merged over the built-in table (LiteLLM model_prices_and_context_window.json format); repeatable' -r -F
complete -c mb-tokens -n "__fish_mb_tokens_using_subcommand prices" -l config -d 'Configuration file [default: /etc/mb/mb.toml or $XDG_CONFIG_HOME/mb/mb.toml]' -r -F
complete -c mb-tokens -n "__fish_mb_tokens_using_subcommand prices" -l json -d 'Print the table as LiteLLM-format JSON (USD per token), readable by --prices'
complete -c mb-tokens -n "__fish_mb_tokens_using_subcommand prices" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c mb-tokens -n "__fish_mb_tokens_using_subcommand pull" -l url -d 'CLIProxyAPI base URL (plain http, on the proxy host)' -r
complete -c mb-tokens -n "__fish_mb_tokens_using_subcommand pull" -l key-file -d 'File holding the management key (remote-management.secret-key); refused unless only its owner can read it (chmod 600)' -r -F
complete -c mb-tokens -n "__fish_mb_tokens_using_subcommand pull" -l out -d 'JSONL file the raw records are appended to' -r -F
complete -c mb-tokens -n "__fish_mb_tokens_using_subcommand pull" -l count -d 'Records asked for per request' -r
complete -c mb-tokens -n "__fish_mb_tokens_using_subcommand pull" -l interval -d 'Seconds between pulls once the queue is empty (keep it well under the queue retention, 60 s by default)' -r
complete -c mb-tokens -n "__fish_mb_tokens_using_subcommand pull" -l timeout -d 'Connect and read timeout, seconds' -r
complete -c mb-tokens -n "__fish_mb_tokens_using_subcommand pull" -l retries -d 'With --once: failed attempts in a row before giving up (without --once the service retries every --interval for ever)' -r
complete -c mb-tokens -n "__fish_mb_tokens_using_subcommand pull" -l once -d 'Stop when the queue is empty (exit 1 after --retries failed attempts in a row)'
complete -c mb-tokens -n "__fish_mb_tokens_using_subcommand pull" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c mb-tokens -n "__fish_mb_tokens_using_subcommand reprice" -l db -d 'SQLite database file, or a PostgreSQL connection string (postgres://HOST/DB, or libpq `host=... dbname=...`; the password from PGPASSFILE or ~/.pgpass, never here) [default: /var/lib/mb/usage.db for root, $XDG_DATA_HOME/mb/usage.db otherwise, or `db` in mb.toml]' -r -F
complete -c mb-tokens -n "__fish_mb_tokens_using_subcommand reprice" -l config -d 'Configuration file [default: /etc/mb/mb.toml or $XDG_CONFIG_HOME/mb/mb.toml; absent means built-in defaults]' -r -F
complete -c mb-tokens -n "__fish_mb_tokens_using_subcommand reprice" -l prices -d 'Prices merged over the built-in table (LiteLLM format); repeatable' -r -F
complete -c mb-tokens -n "__fish_mb_tokens_using_subcommand reprice" -l since -d 'Only rows whose event time is at or after T (RFC 3339, or a date: its start in UTC)' -r
complete -c mb-tokens -n "__fish_mb_tokens_using_subcommand reprice" -l dry-run -d 'Show what would be priced; change nothing'
complete -c mb-tokens -n "__fish_mb_tokens_using_subcommand reprice" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c mb-tokens -n "__fish_mb_tokens_using_subcommand client-hash" -l client-key -d 'Secret keying the `client` hash, created 0600 on first use [default: `client_key` in mb.toml, else <state_dir>/client.key: /var/lib/mb/client.key for root, $XDG_STATE_HOME/mb/client.key otherwise]' -r -F
complete -c mb-tokens -n "__fish_mb_tokens_using_subcommand client-hash" -l config -d 'Configuration file [default: /etc/mb/mb.toml or $XDG_CONFIG_HOME/mb/mb.toml]' -r -F
complete -c mb-tokens -n "__fish_mb_tokens_using_subcommand client-hash" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c mb-tokens -n "__fish_mb_tokens_using_subcommand help; and not __fish_seen_subcommand_from prices pull reprice client-hash help" -f -a "prices" -d 'List the effective price table (built-in plus --prices), USD per million tokens'
complete -c mb-tokens -n "__fish_mb_tokens_using_subcommand help; and not __fish_seen_subcommand_from prices pull reprice client-hash help" -f -a "pull" -d 'Drain CLIProxyAPI\'s usage queue into a JSONL file, durably (fsync before each next pull)'
complete -c mb-tokens -n "__fish_mb_tokens_using_subcommand help; and not __fish_seen_subcommand_from prices pull reprice client-hash help" -f -a "reprice" -d 'Price stored usage that was stored unpriced, now that the price table covers its model'
complete -c mb-tokens -n "__fish_mb_tokens_using_subcommand help; and not __fish_seen_subcommand_from prices pull reprice client-hash help" -f -a "client-hash" -d 'Print the keyed `client` hash of proxy keys read from standard input, one per line (for --key-map)'
complete -c mb-tokens -n "__fish_mb_tokens_using_subcommand help; and not __fish_seen_subcommand_from prices pull reprice client-hash help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
