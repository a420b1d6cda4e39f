# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_mb_customer_global_optspecs
    string join \n db= config= h/help V/version
end

function __fish_mb_customer_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_mb_customer_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_mb_customer_using_subcommand
    set -l cmd (__fish_mb_customer_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c mb-customer -n "__fish_mb_customer_needs_command" -l db -d 'SQLite database file, or a PostgreSQL connection string (postgres://HOST/DB, or libpq `host=... dbname=...`; the password from PGPASSFILE or ~/.pgpass, never here) [default: /var/lib/mb/usage.db for root, $XDG_DATA_HOME/mb/usage.db otherwise, or `db` in mb.toml]' -r -F
complete -c mb-customer -n "__fish_mb_customer_needs_command" -l config -d 'Configuration file [default: /etc/mb/mb.toml or $XDG_CONFIG_HOME/mb/mb.toml; absent means built-in defaults]' -r -F
complete -c mb-customer -n "__fish_mb_customer_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c mb-customer -n "__fish_mb_customer_needs_command" -s V -l version -d 'Print version'
complete -c mb-customer -n "__fish_mb_customer_needs_command" -f -a "add" -d 'Register a customer (status active from --effective)'
complete -c mb-customer -n "__fish_mb_customer_needs_command" -f -a "set" -d 'Change a customer\'s tier, status, Stripe id or VMs'
complete -c mb-customer -n "__fish_mb_customer_needs_command" -f -a "list" -d 'List customers with their tier and status now (or --at)'
complete -c mb-customer -n "__fish_mb_customer_needs_command" -f -a "show" -d 'Show one customer and its tier/status history (with change ids)'
complete -c mb-customer -n "__fish_mb_customer_needs_command" -f -a "undo" -d 'Withdraw a tier or status change recorded by mistake (kept in the history, marked withdrawn)'
complete -c mb-customer -n "__fish_mb_customer_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c mb-customer -n "__fish_mb_customer_using_subcommand add" -l tier -d 'Plan tier (from the config\'s plans)' -r
complete -c mb-customer -n "__fish_mb_customer_using_subcommand add" -l vm -d 'A VM of the customer (repeatable)' -r
complete -c mb-customer -n "__fish_mb_customer_using_subcommand add" -l stripe-customer -d 'Stripe customer id (cus_ and letters or digits)' -r
complete -c mb-customer -n "__fish_mb_customer_using_subcommand add" -l effective -d 'When the tier takes effect: RFC 3339 or YYYY-MM-DD [default: now]' -r
complete -c mb-customer -n "__fish_mb_customer_using_subcommand add" -l db -d 'SQLite database file, or a PostgreSQL connection string (postgres://HOST/DB, or libpq `host=... dbname=...`; the password from PGPASSFILE or ~/.pgpass, never here) [default: /var/lib/mb/usage.db for root, $XDG_DATA_HOME/mb/usage.db otherwise, or `db` in mb.toml]' -r -F
complete -c mb-customer -n "__fish_mb_customer_using_subcommand add" -l config -d 'Configuration file [default: /etc/mb/mb.toml or $XDG_CONFIG_HOME/mb/mb.toml; absent means built-in defaults]' -r -F
complete -c mb-customer -n "__fish_mb_customer_using_subcommand add" -s h -l help -d 'Print help'
complete -c mb-customer -n "__fish_mb_customer_using_subcommand set" -l tier -d 'New plan tier' -r
complete -c mb-customer -n "__fish_mb_customer_using_subcommand set" -l status -d 'New status' -r -f -a "active\t''
suspended\t''
cancelled\t''"
complete -c mb-customer -n "__fish_mb_customer_using_subcommand set" -l stripe-customer -d 'New Stripe customer id (cus_ and letters or digits)' -r
complete -c mb-customer -n "__fish_mb_customer_using_subcommand set" -l add-vm -d 'Add a VM (repeatable)' -r
complete -c mb-customer -n "__fish_mb_customer_using_subcommand set" -l remove-vm -d 'Remove a VM (repeatable)' -r
complete -c mb-customer -n "__fish_mb_customer_using_subcommand set" -l effective -d 'When the change takes effect: RFC 3339 or YYYY-MM-DD [default: now]' -r
complete -c mb-customer -n "__fish_mb_customer_using_subcommand set" -l db -d 'SQLite database file, or a PostgreSQL connection string (postgres://HOST/DB, or libpq `host=... dbname=...`; the password from PGPASSFILE or ~/.pgpass, never here) [default: /var/lib/mb/usage.db for root, $XDG_DATA_HOME/mb/usage.db otherwise, or `db` in mb.toml]' -r -F
complete -c mb-customer -n "__fish_mb_customer_using_subcommand set" -l config -d 'Configuration file [default: /etc/mb/mb.toml or $XDG_CONFIG_HOME/mb/mb.toml; absent means built-in defaults]' -r -F
complete -c mb-customer -n "__fish_mb_customer_using_subcommand set" -s h -l help -d 'Print help'
complete -c mb-customer -n "__fish_mb_customer_using_subcommand list" -l at -d 'Show the state at this time: RFC 3339 or YYYY-MM-DD [default: now]' -r
complete -c mb-customer -n "__fish_mb_customer_using_subcommand list" -l db -d 'SQLite database file, or a PostgreSQL connection string (postgres://HOST/DB, or libpq `host=... dbname=...`; the password from PGPASSFILE or ~/.pgpass, never here) [default: /var/lib/mb/usage.db for root, $XDG_DATA_HOME/mb/usage.db otherwise, or `db` in mb.toml]' -r -F
complete -c mb-customer -n "__fish_mb_customer_using_subcommand list" -l config -d 'Configuration file [default: /etc/mb/mb.toml or $XDG_CONFIG_HOME/mb/mb.toml; absent means built-in defaults]' -r -F
complete -c mb-customer -n "__fish_mb_customer_using_subcommand list" -l csv -d 'CSV instead of a table'
complete -c mb-customer -n "__fish_mb_customer_using_subcommand list" -l json -d 'JSON (one array) instead of a table'
complete -c mb-customer -n "__fish_mb_customer_using_subcommand list" -s h -l help -d 'Print help'
complete -c mb-customer -n "__fish_mb_customer_using_subcommand show" -l db -d 'SQLite database file, or a PostgreSQL connection string (postgres://HOST/DB, or libpq `host=... dbname=...`; the password from PGPASSFILE or ~/.pgpass, never here) [default: /var/lib/mb/usage.db for root, $XDG_DATA_HOME/mb/usage.db otherwise, or `db` in mb.toml]' -r -F
complete -c mb-customer -n "__fish_mb_customer_using_subcommand show" -l config -d 'Configuration file [default: /etc/mb/mb.toml or $XDG_CONFIG_HOME/mb/mb.toml; absent means built-in defaults]' -r -F
complete -c mb-customer -n "__fish_mb_customer_using_subcommand show" -l json -d 'JSON instead of text'
complete -c mb-customer -n "__fish_mb_customer_using_subcommand show" -s h -l help -d 'Print help'
complete -c mb-customer -n "__fish_mb_customer_using_subcommand undo" -l reason -d 'Why, kept with the withdrawal' -r
complete -c mb-customer -n "__fish_mb_customer_using_subcommand undo" -l db -d 'SQLite database file, or a PostgreSQL connection string (postgres://HOST/DB, or libpq `host=... dbname=...`; the password from PGPASSFILE or ~/.pgpass, never here) [default: /var/lib/mb/usage.db for root, $XDG_DATA_HOME/mb/usage.db otherwise, or `db` in mb.toml]' -r -F
complete -c mb-customer -n "__fish_mb_customer_using_subcommand undo" -l config -d 'Configuration file [default: /etc/mb/mb.toml or $XDG_CONFIG_HOME/mb/mb.toml; absent means built-in defaults]' -r -F
complete -c mb-customer -n "__fish_mb_customer_using_subcommand undo" -s h -l help -d 'Print help'
complete -c mb-customer -n "__fish_mb_customer_using_subcommand help; and not __fish_seen_subcommand_from add set list show undo help" -f -a "add" -d 'Register a customer (status active from --effective)'
complete -c mb-customer -n "__fish_mb_customer_using_subcommand help; and not __fish_seen_subcommand_from add set list show undo help" -f -a "set" -d 'Change a customer\'s tier, status, Stripe id or VMs'
complete -c mb-customer -n "__fish_mb_customer_using_subcommand help; and not __fish_seen_subcommand_from add set list show undo help" -f -a "list" -d 'List customers with their tier and status now (or --at)'
complete -c mb-customer -n "__fish_mb_customer_using_subcommand help; and not __fish_seen_subcommand_from add set list show undo help" -f -a "show" -d 'Show one customer and its tier/status history (with change ids)'
complete -c mb-customer -n "__fish_mb_customer_using_subcommand help; and not __fish_seen_subcommand_from add set list show undo help" -f -a "undo" -d 'Withdraw a tier or status change recorded by mistake (kept in the history, marked withdrawn)'
complete -c mb-customer -n "__fish_mb_customer_using_subcommand help; and not __fish_seen_subcommand_from add set list show undo help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
