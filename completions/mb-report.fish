# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_mb_report_global_optspecs
    string join \n db= config= customer= tz= as-of= vm= csv json period= date= since= until= month= by-vm h/help V/version
end

function __fish_mb_report_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_mb_report_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_mb_report_using_subcommand
    set -l cmd (__fish_mb_report_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c mb-report -n "__fish_mb_report_needs_command" -l db -d 'SQLite database file [default: per mb.toml, else /var/lib/mb/usage.db for root, $XDG_DATA_HOME/mb/usage.db otherwise]' -r -F
complete -c mb-report -n "__fish_mb_report_needs_command" -l config -d 'Configuration file' -r -F
complete -c mb-report -n "__fish_mb_report_needs_command" -l customer -d 'Only this customer (a registered one, or one with usage)' -r
complete -c mb-report -n "__fish_mb_report_needs_command" -l tz -d 'IANA time zone of periods and dates [default: config timezone, else UTC]' -r
complete -c mb-report -n "__fish_mb_report_needs_command" -l as-of -d 'Ingest-time cutoff: ignore events stored after it (a date, local time or RFC 3339)' -r
complete -c mb-report -n "__fish_mb_report_needs_command" -l vm -d 'Only this VM' -r
complete -c mb-report -n "__fish_mb_report_needs_command" -l period -d 'The period containing --date (default: now)' -r -f -a "hour\t'One clock hour'
day\t'A local calendar day'
week\t'An ISO week (Monday to Monday)'
month\t'A calendar month'"
complete -c mb-report -n "__fish_mb_report_needs_command" -l date -d 'A date or time inside the period [default: now]' -r
complete -c mb-report -n "__fish_mb_report_needs_command" -l since -d 'Start of a custom range (a date, local time or RFC 3339); until --until, else until now' -r
complete -c mb-report -n "__fish_mb_report_needs_command" -l until -d 'End (exclusive) of a custom range' -r
complete -c mb-report -n "__fish_mb_report_needs_command" -l month -d 'A calendar month: YYYY-MM, last or current' -r
complete -c mb-report -n "__fish_mb_report_needs_command" -l csv -d 'CSV instead of a text table'
complete -c mb-report -n "__fish_mb_report_needs_command" -l json -d 'JSON instead of a text table (exact numbers, null for missing; fields in docs/mb-report.md)'
complete -c mb-report -n "__fish_mb_report_needs_command" -l by-vm -d 'One line per VM: samples, last sample, CPU, memory, disk, network, coverage, gaps, counter resets and reboots, with the customer\'s total (disks summed across VMs); VMs the registry does not list for the customer are marked'
complete -c mb-report -n "__fish_mb_report_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c mb-report -n "__fish_mb_report_needs_command" -s V -l version -d 'Print version'
complete -c mb-report -n "__fish_mb_report_needs_command" -f -a "summary" -d 'Usage per customer: API by model, resources, activity (the default)'
complete -c mb-report -n "__fish_mb_report_needs_command" -f -a "series" -d 'One tidy table: a row per bucket x customer x metric'
complete -c mb-report -n "__fish_mb_report_needs_command" -f -a "invoice" -d 'The month\'s invoice lines: prorated base fee and LLM overage'
complete -c mb-report -n "__fish_mb_report_needs_command" -f -a "stripe-meter" -d 'Stripe meter-event CSV (identifier,timestamp,event_name,payload_stripe_customer_id,payload_value): billable tokens per customer and day; days Stripe would refuse (not ended yet, older than 35 days) are left out with a warning and exit 1; --json for one JSON object'
complete -c mb-report -n "__fish_mb_report_needs_command" -f -a "vms" -d 'Fleet freshness: every VM\'s last sample, api and activity event and ingest run, stale marks (exit 1 when a VM is stale), and the latest ingest runs'
complete -c mb-report -n "__fish_mb_report_needs_command" -f -a "events" -d 'The stored events as mb-events(5) JSON lines, to pull into another database'
complete -c mb-report -n "__fish_mb_report_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c mb-report -n "__fish_mb_report_using_subcommand summary" -l period -d 'The period containing --date (default: now)' -r -f -a "hour\t'One clock hour'
day\t'A local calendar day'
week\t'An ISO week (Monday to Monday)'
month\t'A calendar month'"
complete -c mb-report -n "__fish_mb_report_using_subcommand summary" -l date -d 'A date or time inside the period [default: now]' -r
complete -c mb-report -n "__fish_mb_report_using_subcommand summary" -l since -d 'Start of a custom range (a date, local time or RFC 3339); until --until, else until now' -r
complete -c mb-report -n "__fish_mb_report_using_subcommand summary" -l until -d 'End (exclusive) of a custom range' -r
complete -c mb-report -n "__fish_mb_report_using_subcommand summary" -l month -d 'A calendar month: YYYY-MM, last or current' -r
complete -c mb-report -n "__fish_mb_report_using_subcommand summary" -l vm -d 'Only this VM' -r
complete -c mb-report -n "__fish_mb_report_using_subcommand summary" -l db -d 'SQLite database file [default: per mb.toml, else /var/lib/mb/usage.db for root, $XDG_DATA_HOME/mb/usage.db otherwise]' -r -F
complete -c mb-report -n "__fish_mb_report_using_subcommand summary" -l config -d 'Configuration file' -r -F
complete -c mb-report -n "__fish_mb_report_using_subcommand summary" -l customer -d 'Only this customer (a registered one, or one with usage)' -r
complete -c mb-report -n "__fish_mb_report_using_subcommand summary" -l tz -d 'IANA time zone of periods and dates [default: config timezone, else UTC]' -r
complete -c mb-report -n "__fish_mb_report_using_subcommand summary" -l as-of -d 'Ingest-time cutoff: ignore events stored after it (a date, local time or RFC 3339)' -r
complete -c mb-report -n "__fish_mb_report_using_subcommand summary" -l csv -d 'CSV instead of a text table'
complete -c mb-report -n "__fish_mb_report_using_subcommand summary" -l json -d 'JSON instead of a text table (exact numbers, null for missing; fields in docs/mb-report.md)'
complete -c mb-report -n "__fish_mb_report_using_subcommand summary" -l by-vm -d 'One line per VM: samples, last sample, CPU, memory, disk, network, coverage, gaps, counter resets and reboots, with the customer\'s total (disks summed across VMs); VMs the registry does not list for the customer are marked'
complete -c mb-report -n "__fish_mb_report_using_subcommand summary" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c mb-report -n "__fish_mb_report_using_subcommand series" -l period -d 'The period containing --date (default: now)' -r -f -a "hour\t'One clock hour'
day\t'A local calendar day'
week\t'An ISO week (Monday to Monday)'
month\t'A calendar month'"
complete -c mb-report -n "__fish_mb_report_using_subcommand series" -l date -d 'A date or time inside the period [default: now]' -r
complete -c mb-report -n "__fish_mb_report_using_subcommand series" -l since -d 'Start of a custom range (a date, local time or RFC 3339); until --until, else until now' -r
complete -c mb-report -n "__fish_mb_report_using_subcommand series" -l until -d 'End (exclusive) of a custom range' -r
complete -c mb-report -n "__fish_mb_report_using_subcommand series" -l month -d 'A calendar month: YYYY-MM, last or current' -r
complete -c mb-report -n "__fish_mb_report_using_subcommand series" -l vm -d 'Only this VM' -r
complete -c mb-report -n "__fish_mb_report_using_subcommand series" -l by -d 'Bucket size' -r -f -a "hour\t'One clock hour'
day\t'A local calendar day'
week\t'An ISO week (Monday to Monday)'
month\t'A calendar month'"
complete -c mb-report -n "__fish_mb_report_using_subcommand series" -l metric -d 'Metrics to include (repeatable) [default: all]' -r -f -a "requests\t''
tokens\t''
tokens_in\t''
tokens_out\t''
cache_read_tokens\t''
cache_write_tokens\t''
cost_usd\t''
cpu_percent\t''
memory_percent\t''
disk_gb\t''
net_in_mb\t''
net_out_mb\t''
activity_count\t''
activity_seconds\t''"
complete -c mb-report -n "__fish_mb_report_using_subcommand series" -l db -d 'SQLite database file [default: per mb.toml, else /var/lib/mb/usage.db for root, $XDG_DATA_HOME/mb/usage.db otherwise]' -r -F
complete -c mb-report -n "__fish_mb_report_using_subcommand series" -l config -d 'Configuration file' -r -F
complete -c mb-report -n "__fish_mb_report_using_subcommand series" -l customer -d 'Only this customer (a registered one, or one with usage)' -r
complete -c mb-report -n "__fish_mb_report_using_subcommand series" -l tz -d 'IANA time zone of periods and dates [default: config timezone, else UTC]' -r
complete -c mb-report -n "__fish_mb_report_using_subcommand series" -l as-of -d 'Ingest-time cutoff: ignore events stored after it (a date, local time or RFC 3339)' -r
complete -c mb-report -n "__fish_mb_report_using_subcommand series" -l csv -d 'CSV instead of a text table'
complete -c mb-report -n "__fish_mb_report_using_subcommand series" -l json -d 'JSON instead of a text table (exact numbers, null for missing; fields in docs/mb-report.md)'
complete -c mb-report -n "__fish_mb_report_using_subcommand series" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c mb-report -n "__fish_mb_report_using_subcommand invoice" -l month -d 'The month: YYYY-MM or last' -r
complete -c mb-report -n "__fish_mb_report_using_subcommand invoice" -l usd-eur -d 'USD -> invoice currency rate [default: billing.usd_eur in mb.toml]' -r
complete -c mb-report -n "__fish_mb_report_using_subcommand invoice" -l usd-eur-source -d 'Where --usd-eur comes from, printed on the line' -r
complete -c mb-report -n "__fish_mb_report_using_subcommand invoice" -l usd-eur-date -d 'The date of --usd-eur, printed on the line [default: the period\'s last day]' -r
complete -c mb-report -n "__fish_mb_report_using_subcommand invoice" -l db -d 'SQLite database file [default: per mb.toml, else /var/lib/mb/usage.db for root, $XDG_DATA_HOME/mb/usage.db otherwise]' -r -F
complete -c mb-report -n "__fish_mb_report_using_subcommand invoice" -l config -d 'Configuration file' -r -F
complete -c mb-report -n "__fish_mb_report_using_subcommand invoice" -l customer -d 'Only this customer (a registered one, or one with usage)' -r
complete -c mb-report -n "__fish_mb_report_using_subcommand invoice" -l tz -d 'IANA time zone of periods and dates [default: config timezone, else UTC]' -r
complete -c mb-report -n "__fish_mb_report_using_subcommand invoice" -l as-of -d 'Ingest-time cutoff: ignore events stored after it (a date, local time or RFC 3339)' -r
complete -c mb-report -n "__fish_mb_report_using_subcommand invoice" -l allow-unregistered -d 'Invoice the registered customers even if others have usage (listed as warnings)'
complete -c mb-report -n "__fish_mb_report_using_subcommand invoice" -l allow-unpriced -d 'Invoice priced usage even if some usage has no price (listed as warnings)'
complete -c mb-report -n "__fish_mb_report_using_subcommand invoice" -l allow-vm-mismatch -d 'Invoice usage from a VM the registry lists for another customer than the one its events claim (left out of the invoice and listed as warnings by default)'
complete -c mb-report -n "__fish_mb_report_using_subcommand invoice" -l csv -d 'CSV instead of a text table'
complete -c mb-report -n "__fish_mb_report_using_subcommand invoice" -l json -d 'JSON instead of a text table (exact numbers, null for missing; fields in docs/mb-report.md)'
complete -c mb-report -n "__fish_mb_report_using_subcommand invoice" -s h -l help -d 'Print help'
complete -c mb-report -n "__fish_mb_report_using_subcommand stripe-meter" -l month -d 'The month: YYYY-MM or last' -r
complete -c mb-report -n "__fish_mb_report_using_subcommand stripe-meter" -l event-name -d 'The Stripe meter\'s event name' -r
complete -c mb-report -n "__fish_mb_report_using_subcommand stripe-meter" -l db -d 'SQLite database file [default: per mb.toml, else /var/lib/mb/usage.db for root, $XDG_DATA_HOME/mb/usage.db otherwise]' -r -F
complete -c mb-report -n "__fish_mb_report_using_subcommand stripe-meter" -l config -d 'Configuration file' -r -F
complete -c mb-report -n "__fish_mb_report_using_subcommand stripe-meter" -l customer -d 'Only this customer (a registered one, or one with usage)' -r
complete -c mb-report -n "__fish_mb_report_using_subcommand stripe-meter" -l tz -d 'IANA time zone of periods and dates [default: config timezone, else UTC]' -r
complete -c mb-report -n "__fish_mb_report_using_subcommand stripe-meter" -l as-of -d 'Ingest-time cutoff: ignore events stored after it (a date, local time or RFC 3339)' -r
complete -c mb-report -n "__fish_mb_report_using_subcommand stripe-meter" -l csv -d 'CSV instead of a text table'
complete -c mb-report -n "__fish_mb_report_using_subcommand stripe-meter" -l json -d 'JSON instead of a text table (exact numbers, null for missing; fields in docs/mb-report.md)'
complete -c mb-report -n "__fish_mb_report_using_subcommand stripe-meter" -s h -l help -d 'Print help'
complete -c mb-report -n "__fish_mb_report_using_subcommand vms" -l since -d 'Start of the window searched for api and activity events (RFC 3339 or date) [default: 31 days before --until]' -r
complete -c mb-report -n "__fish_mb_report_using_subcommand vms" -l until -d 'Measure ages at this time, ignoring later samples and events [default: now]' -r
complete -c mb-report -n "__fish_mb_report_using_subcommand vms" -l stale-after -d 'A VM is stale after this long without a sample: seconds, or with s, m, h or d (15m) [default: two of its sampling intervals]' -r
complete -c mb-report -n "__fish_mb_report_using_subcommand vms" -l runs -d 'How many of the latest ingest runs to list' -r
complete -c mb-report -n "__fish_mb_report_using_subcommand vms" -l db -d 'SQLite database file [default: per mb.toml, else /var/lib/mb/usage.db for root, $XDG_DATA_HOME/mb/usage.db otherwise]' -r -F
complete -c mb-report -n "__fish_mb_report_using_subcommand vms" -l config -d 'Configuration file' -r -F
complete -c mb-report -n "__fish_mb_report_using_subcommand vms" -l customer -d 'Only this customer (a registered one, or one with usage)' -r
complete -c mb-report -n "__fish_mb_report_using_subcommand vms" -l tz -d 'IANA time zone of periods and dates [default: config timezone, else UTC]' -r
complete -c mb-report -n "__fish_mb_report_using_subcommand vms" -l as-of -d 'Ingest-time cutoff: ignore events stored after it (a date, local time or RFC 3339)' -r
complete -c mb-report -n "__fish_mb_report_using_subcommand vms" -l csv -d 'CSV instead of a text table'
complete -c mb-report -n "__fish_mb_report_using_subcommand vms" -l json -d 'JSON instead of a text table (exact numbers, null for missing; fields in docs/mb-report.md)'
complete -c mb-report -n "__fish_mb_report_using_subcommand vms" -s h -l help -d 'Print help'
complete -c mb-report -n "__fish_mb_report_using_subcommand events" -l since -d 'Only events at or after this time (a date, local time or RFC 3339)' -r
complete -c mb-report -n "__fish_mb_report_using_subcommand events" -l until -d 'Only events before this time' -r
complete -c mb-report -n "__fish_mb_report_using_subcommand events" -l kind -d 'Only this kind (repeatable)' -r -f -a "resource\t'Resource samples'
api\t'API usage'
activity\t'Activity'"
complete -c mb-report -n "__fish_mb_report_using_subcommand events" -l vm -d 'Only this VM' -r
complete -c mb-report -n "__fish_mb_report_using_subcommand events" -l db -d 'SQLite database file [default: per mb.toml, else /var/lib/mb/usage.db for root, $XDG_DATA_HOME/mb/usage.db otherwise]' -r -F
complete -c mb-report -n "__fish_mb_report_using_subcommand events" -l config -d 'Configuration file' -r -F
complete -c mb-report -n "__fish_mb_report_using_subcommand events" -l customer -d 'Only this customer (a registered one, or one with usage)' -r
complete -c mb-report -n "__fish_mb_report_using_subcommand events" -l tz -d 'IANA time zone of periods and dates [default: config timezone, else UTC]' -r
complete -c mb-report -n "__fish_mb_report_using_subcommand events" -l as-of -d 'Ingest-time cutoff: ignore events stored after it (a date, local time or RFC 3339)' -r
complete -c mb-report -n "__fish_mb_report_using_subcommand events" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c mb-report -n "__fish_mb_report_using_subcommand help; and not __fish_seen_subcommand_from summary series invoice stripe-meter vms events help" -f -a "summary" -d 'Usage per customer: API by model, resources, activity (the default)'
complete -c mb-report -n "__fish_mb_report_using_subcommand help; and not __fish_seen_subcommand_from summary series invoice stripe-meter vms events help" -f -a "series" -d 'One tidy table: a row per bucket x customer x metric'
complete -c mb-report -n "__fish_mb_report_using_subcommand help; and not __fish_seen_subcommand_from summary series invoice stripe-meter vms events help" -f -a "invoice" -d 'The month\'s invoice lines: prorated base fee and LLM overage'
complete -c mb-report -n "__fish_mb_report_using_subcommand help; and not __fish_seen_subcommand_from summary series invoice stripe-meter vms events help" -f -a "stripe-meter" -d 'Stripe meter-event CSV (identifier,timestamp,event_name,payload_stripe_customer_id,payload_value): billable tokens per customer and day; days Stripe would refuse (not ended yet, older than 35 days) are left out with a warning and exit 1; --json for one JSON object'
complete -c mb-report -n "__fish_mb_report_using_subcommand help; and not __fish_seen_subcommand_from summary series invoice stripe-meter vms events help" -f -a "vms" -d 'Fleet freshness: every VM\'s last sample, api and activity event and ingest run, stale marks (exit 1 when a VM is stale), and the latest ingest runs'
complete -c mb-report -n "__fish_mb_report_using_subcommand help; and not __fish_seen_subcommand_from summary series invoice stripe-meter vms events help" -f -a "events" -d 'The stored events as mb-events(5) JSON lines, to pull into another database'
complete -c mb-report -n "__fish_mb_report_using_subcommand help; and not __fish_seen_subcommand_from summary series invoice stripe-meter vms events help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
