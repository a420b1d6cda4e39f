complete -c mb-sample -l proc-root -d 'Root of the proc filesystem (a fake tree for tests and containers)' -r -F
complete -c mb-sample -l sys-root -d 'Root of sysfs' -r -F
complete -c mb-sample -l mount -d 'Measure this filesystem (repeatable) instead of the default set: real local filesystems of the mount table, each device once, no tmpfs/overlay/pseudo/network filesystems' -r -F
complete -c mb-sample -l iface -d 'Count interfaces whose name matches GLOB (`*`, `?`; repeatable) instead of the physical ones' -r
complete -c mb-sample -l state -d 'State file [default: <state_dir>/sample.state, i.e. /var/lib/mb/sample.state for root, $XDG_STATE_HOME/mb/sample.state otherwise]' -r -F
complete -c mb-sample -l customer -d 'Customer the usage belongs to [default: customer_id in mb.toml]' -r
complete -c mb-sample -l vm -d 'VM id [default: vm_id in mb.toml, else the host name]' -r
complete -c mb-sample -l config -d 'Configuration file [default: /etc/mb/mb.toml or $XDG_CONFIG_HOME/mb/mb.toml; absent means built-in defaults]' -r -F
complete -c mb-sample -l spool -d 'Write each line as one complete file into DIR (temp file, fsync, rename) for `mb-ingest --spool DIR`, instead of stdout; the state is saved only once that file is durable' -r -F
complete -c mb-sample -l watch -d 'Keep running and print a line every SECONDS (for a systemd service instead of cron); SIGTERM or SIGINT ends it after the current line' -r
complete -c mb-sample -l statvfs-fixture -d 'Test knob: take statvfs numbers from FILE (PATH<TAB>FRSIZE<TAB>BLOCKS<TAB>BFREE<TAB>BAVAIL lines)' -r -F
complete -c mb-sample -s h -l help -d 'Print help (see more with \'--help\')'
complete -c mb-sample -s V -l version -d 'Print version'
