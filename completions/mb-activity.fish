# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_mb_activity_global_optspecs
    string join \n customer= vm= config= redact= h/help V/version
end

function __fish_mb_activity_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_mb_activity_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_mb_activity_using_subcommand
    set -l cmd (__fish_mb_activity_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c mb-activity -n "__fish_mb_activity_needs_command" -l customer -d 'Customer the activity belongs to [default: customer_id in mb.toml]' -r
complete -c mb-activity -n "__fish_mb_activity_needs_command" -l vm -d 'VM id [default: vm_id in mb.toml, else the host name]' -r
complete -c mb-activity -n "__fish_mb_activity_needs_command" -l config -d 'Configuration file [default: /etc/mb/mb.toml or $XDG_CONFIG_HOME/mb/mb.toml; absent means built-in defaults]' -r -F
complete -c mb-activity -n "__fish_mb_activity_needs_command" -l redact -d 'Also mask every match of REGEX in command text with *** (repeatable)' -r
complete -c mb-activity -n "__fish_mb_activity_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c mb-activity -n "__fish_mb_activity_needs_command" -s V -l version -d 'Print version'
complete -c mb-activity -n "__fish_mb_activity_needs_command" -f -a "record" -d 'Print one activity event on stdout'
complete -c mb-activity -n "__fish_mb_activity_needs_command" -f -a "run" -d 'Run a command, then append its activity event to the spool'
complete -c mb-activity -n "__fish_mb_activity_needs_command" -f -a "init" -d 'Print the shell hook that records every interactive command'
complete -c mb-activity -n "__fish_mb_activity_needs_command" -f -a "hook" -d 'Record one command line for the shell hook (called by the code `init` prints)'
complete -c mb-activity -n "__fish_mb_activity_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c mb-activity -n "__fish_mb_activity_using_subcommand record" -l type -d 'Activity type: command, pattern, operation, or another lower-case word' -r
complete -c mb-activity -n "__fish_mb_activity_using_subcommand record" -l name -d 'Name of the pattern or operation' -r
complete -c mb-activity -n "__fish_mb_activity_using_subcommand record" -l command -d 'Command text (redacted, capped at 4 KiB)' -r
complete -c mb-activity -n "__fish_mb_activity_using_subcommand record" -l duration -d 'Wall time in seconds, like 12 or 0.25' -r
complete -c mb-activity -n "__fish_mb_activity_using_subcommand record" -l exit-code -d 'Exit status of the activity' -r
complete -c mb-activity -n "__fish_mb_activity_using_subcommand record" -l at -d 'When the activity started, RFC 3339 [default: now]' -r
complete -c mb-activity -n "__fish_mb_activity_using_subcommand record" -l user -d 'Login name [default: $LOGNAME, $USER, or the name of the current uid]' -r
complete -c mb-activity -n "__fish_mb_activity_using_subcommand record" -l customer -d 'Customer the activity belongs to [default: customer_id in mb.toml]' -r
complete -c mb-activity -n "__fish_mb_activity_using_subcommand record" -l vm -d 'VM id [default: vm_id in mb.toml, else the host name]' -r
complete -c mb-activity -n "__fish_mb_activity_using_subcommand record" -l config -d 'Configuration file [default: /etc/mb/mb.toml or $XDG_CONFIG_HOME/mb/mb.toml; absent means built-in defaults]' -r -F
complete -c mb-activity -n "__fish_mb_activity_using_subcommand record" -l redact -d 'Also mask every match of REGEX in command text with *** (repeatable)' -r
complete -c mb-activity -n "__fish_mb_activity_using_subcommand record" -s h -l help -d 'Print help'
complete -c mb-activity -n "__fish_mb_activity_using_subcommand run" -l type -d 'Activity type' -r
complete -c mb-activity -n "__fish_mb_activity_using_subcommand run" -l name -d 'Name of the pattern or operation' -r
complete -c mb-activity -n "__fish_mb_activity_using_subcommand run" -l spool -d 'Spool directory [default: [activity] spool in mb.toml, else STATE_DIR/spool]' -r -F
complete -c mb-activity -n "__fish_mb_activity_using_subcommand run" -l customer -d 'Customer the activity belongs to [default: customer_id in mb.toml]' -r
complete -c mb-activity -n "__fish_mb_activity_using_subcommand run" -l vm -d 'VM id [default: vm_id in mb.toml, else the host name]' -r
complete -c mb-activity -n "__fish_mb_activity_using_subcommand run" -l config -d 'Configuration file [default: /etc/mb/mb.toml or $XDG_CONFIG_HOME/mb/mb.toml; absent means built-in defaults]' -r -F
complete -c mb-activity -n "__fish_mb_activity_using_subcommand run" -l redact -d 'Also mask every match of REGEX in command text with *** (repeatable)' -r
complete -c mb-activity -n "__fish_mb_activity_using_subcommand run" -l wait -d 'Write the event before exiting, instead of in a detached background process (for a script that runs mb-ingest --spool right after)'
complete -c mb-activity -n "__fish_mb_activity_using_subcommand run" -s h -l help -d 'Print help'
complete -c mb-activity -n "__fish_mb_activity_using_subcommand init" -l spool -d 'Spool directory the hook writes to [default: as for run]. The global --customer, --vm, --config and --redact given to init are embedded in the hook too' -r -F
complete -c mb-activity -n "__fish_mb_activity_using_subcommand init" -l customer -d 'Customer the activity belongs to [default: customer_id in mb.toml]' -r
complete -c mb-activity -n "__fish_mb_activity_using_subcommand init" -l vm -d 'VM id [default: vm_id in mb.toml, else the host name]' -r
complete -c mb-activity -n "__fish_mb_activity_using_subcommand init" -l config -d 'Configuration file [default: /etc/mb/mb.toml or $XDG_CONFIG_HOME/mb/mb.toml; absent means built-in defaults]' -r -F
complete -c mb-activity -n "__fish_mb_activity_using_subcommand init" -l redact -d 'Also mask every match of REGEX in command text with *** (repeatable)' -r
complete -c mb-activity -n "__fish_mb_activity_using_subcommand init" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c mb-activity -n "__fish_mb_activity_using_subcommand hook" -l start -d 'Start of the command, seconds since the epoch ($EPOCHREALTIME)' -r
complete -c mb-activity -n "__fish_mb_activity_using_subcommand hook" -l end -d 'End of the command, seconds since the epoch' -r
complete -c mb-activity -n "__fish_mb_activity_using_subcommand hook" -l exit-code -d 'The command\'s exit status ($?)' -r
complete -c mb-activity -n "__fish_mb_activity_using_subcommand hook" -l pid -d 'The shell\'s process id ($$), part of the event id' -r
complete -c mb-activity -n "__fish_mb_activity_using_subcommand hook" -l spool -d 'Spool directory [default: as for run]' -r -F
complete -c mb-activity -n "__fish_mb_activity_using_subcommand hook" -l customer -d 'Customer the activity belongs to [default: customer_id in mb.toml]' -r
complete -c mb-activity -n "__fish_mb_activity_using_subcommand hook" -l vm -d 'VM id [default: vm_id in mb.toml, else the host name]' -r
complete -c mb-activity -n "__fish_mb_activity_using_subcommand hook" -l config -d 'Configuration file [default: /etc/mb/mb.toml or $XDG_CONFIG_HOME/mb/mb.toml; absent means built-in defaults]' -r -F
complete -c mb-activity -n "__fish_mb_activity_using_subcommand hook" -l redact -d 'Also mask every match of REGEX in command text with *** (repeatable)' -r
complete -c mb-activity -n "__fish_mb_activity_using_subcommand hook" -s h -l help -d 'Print help'
complete -c mb-activity -n "__fish_mb_activity_using_subcommand help; and not __fish_seen_subcommand_from record run init hook help" -f -a "record" -d 'Print one activity event on stdout'
complete -c mb-activity -n "__fish_mb_activity_using_subcommand help; and not __fish_seen_subcommand_from record run init hook help" -f -a "run" -d 'Run a command, then append its activity event to the spool'
complete -c mb-activity -n "__fish_mb_activity_using_subcommand help; and not __fish_seen_subcommand_from record run init hook help" -f -a "init" -d 'Print the shell hook that records every interactive command'
complete -c mb-activity -n "__fish_mb_activity_using_subcommand help; and not __fish_seen_subcommand_from record run init hook help" -f -a "hook" -d 'Record one command line for the shell hook (called by the code `init` prints)'
complete -c mb-activity -n "__fish_mb_activity_using_subcommand help; and not __fish_seen_subcommand_from record run init hook help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
