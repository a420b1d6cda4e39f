//! The shell hooks printed by `mb-activity init bash|zsh`.
//!
//! Like atuin's and direnv's, a hook is a few shell functions installed in
//! the interactive shell. It takes the start time just before a command
//! line runs and, at the next prompt, hands the line, its start and end
//! times and `$?` to `mb-activity hook` **in the background**: a disowned
//! job with all output discarded, so the prompt never waits on the disk or
//! the binary. Design rules, all checked by the tests:
//!
//! - `$?` (and bash's `$_`) are the same after the hook as before it, so
//!   prompts that show the status keep working;
//! - when the binary is gone (uninstalled, not executable) the hook does
//!   nothing and prints nothing; errors of the background job go nowhere;
//! - lines starting with a space are not recorded (the `ignorespace` habit);
//! - only lines typed at the prompt count, not commands run by the prompt
//!   itself (PROMPT_COMMAND, completion).
//!
//! **bash** (5.0 or newer, for `$EPOCHREALTIME`; the hook stays inactive on
//! older versions). The start time is taken by `PS0`, which bash expands
//! once per command line after reading it and before running it; an
//! arithmetic side effect in an array subscript stores the time without
//! printing anything or forking. No DEBUG trap is used, so scripts and
//! loops in the shell pay nothing per simple command. At the prompt,
//! `PROMPT_COMMAND` (the hook goes first, to see the command's `$?`) reads
//! the line from the history: bash-preexec's technique, including its
//! handling of `HISTCONTROL`: `ignorespace` would keep a space-prefixed
//! line out of the history, making it indistinguishable from a repeated
//! line dropped by `ignoredups`, so the hook removes `ignorespace` from
//! `HISTCONTROL` and enforces it itself by deleting such lines from the
//! history (so they still never reach `~/.bash_history`). Whether the line
//! was added to the history is read from `$HISTCMD`; a line that was not
//! added is recorded only under `ignoredups`/`erasedups` (then it equals
//! the last entry). With history disabled (`set +o history`) nothing is
//! recorded: the hook cannot see the line as typed, so it could not honour
//! the space rule.
//!
//! **zsh**: `preexec` receives the line as typed (also when
//! `HIST_IGNORE_SPACE` keeps it out of the history) and `precmd` runs at
//! the prompt, both through `add-zsh-hook`; time from `zsh/datetime`.

use std::path::Path;

/// The shells `init` supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Shell {
    /// bash 5.0 or newer
    Bash,
    /// zsh
    Zsh,
}

/// Quote `s` for a POSIX shell (single quotes).
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The hook script for `shell`, calling the binary at `bin` and passing
/// `extra` (already-split arguments such as `--spool DIR`) to every
/// `mb-activity hook` call. A `warning` (why the hook cannot record) is
/// printed on stderr once, when an interactive shell loads the hook.
pub fn script(shell: Shell, bin: &Path, extra: &[String], warning: Option<&str>) -> String {
    let bin = quote(&bin.to_string_lossy());
    let args = extra.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" ");
    let warn = match warning {
        // One line, control characters made visible: it goes to a terminal.
        Some(w) => {
            let line: String = w
                .chars()
                .map(|c| if c.is_control() { '?' } else { c })
                .collect();
            format!("builtin printf '%s\\n' {} >&2\n", quote(&line))
        }
        None => String::new(),
    };
    let template = match shell {
        Shell::Bash => BASH,
        Shell::Zsh => ZSH,
    };
    template
        .replace("@BIN@", &bin)
        .replace("@ARGS@", &args)
        .replace("@WARN@\n", &warn)
}

const BASH: &str = r#"# mb-activity hook for bash: eval "$(mb-activity init bash)" in ~/.bashrc.
# Records each command line typed at the prompt (with its duration and exit
# status) in the background; lines starting with a space are not recorded.
if [[ $- == *i* && -z ${__mb_activity_bin-} && -n ${EPOCHREALTIME-} ]]; then
@WARN@
__mb_activity_bin=@BIN@
__mb_activity_args=(@ARGS@)
__mb_activity_t0=
__mb_activity_hc=$HISTCMD
__mb_activity_ret() { return "$1"; }
__mb_activity_precmd() {
    local s=$? hc=$HISTCMD t1=${EPOCHREALTIME/[.,]/} t0=${__mb_activity_t0-} line=
    __mb_activity_t0=
    if [[ -n $t0 && -x $__mb_activity_bin ]]; then
        if (( hc > __mb_activity_hc )); then
            line=$(HISTTIMEFORMAT= builtin history 1)
            line=${line#*[0-9][* ] }
            if [[ $line == ' '* ]]; then
                [[ -z ${__mb_activity_ignorespace-} ]] || builtin history -d $((hc - 1))
                line=
            fi
        elif [[ :${HISTCONTROL-}: == *:ignoredups:* || :${HISTCONTROL-}: == *:erasedups:* ]]; then
            line=$(HISTTIMEFORMAT= builtin history 1)
            line=${line#*[0-9][* ] }
        fi
        if [[ -n $line ]]; then
            ( exec "$__mb_activity_bin" hook "${__mb_activity_args[@]}" --start "${t0%??????}.${t0: -6}" --end "${t1%??????}.${t1: -6}" --exit-code "$s" --pid "$$" -- "$line" ) </dev/null >/dev/null 2>&1 &
            builtin disown $! 2>/dev/null
        fi
    fi
    case :${HISTCONTROL-}: in
    *:ignoreboth:*) HISTCONTROL=${HISTCONTROL//ignoreboth/ignoredups} __mb_activity_ignorespace=1 ;;
    *:ignorespace:*) HISTCONTROL=${HISTCONTROL//ignorespace/} __mb_activity_ignorespace=1 ;;
    esac
    __mb_activity_hc=$HISTCMD
    __mb_activity_ret "$s" "$1"
}
PS0='${__mb_activity_z[(__mb_activity_t0=${EPOCHREALTIME/[.,]/}),0]-}'${PS0-}
PROMPT_COMMAND='__mb_activity_precmd "$_"'${PROMPT_COMMAND:+$'\n'$PROMPT_COMMAND}
fi
"#;

const ZSH: &str = r#"# mb-activity hook for zsh: eval "$(mb-activity init zsh)" in ~/.zshrc.
# Records each command line typed at the prompt (with its duration and exit
# status) in the background; lines starting with a space are not recorded.
if [[ -o interactive ]] && (( ! ${+_mb_activity_bin} )) && zmodload zsh/datetime 2>/dev/null; then
@WARN@
typeset -g _mb_activity_bin=@BIN@
typeset -ga _mb_activity_args=(@ARGS@)
typeset -g _mb_activity_t0= _mb_activity_line=
_mb_activity_preexec() {
    if [[ -z $1 || $1 == ' '* ]]; then
        _mb_activity_t0=
    else
        _mb_activity_line=$1
        _mb_activity_t0=$EPOCHREALTIME
    fi
}
_mb_activity_precmd() {
    local s=$? t1=$EPOCHREALTIME t0=$_mb_activity_t0
    _mb_activity_t0=
    if [[ -n $t0 && -x $_mb_activity_bin ]]; then
        ( exec "$_mb_activity_bin" hook "${_mb_activity_args[@]}" --start "$t0" --end "$t1" --exit-code "$s" --pid "$$" -- "$_mb_activity_line" ) </dev/null >/dev/null 2>&1 &!
    fi
    return $s
}
autoload -Uz add-zsh-hook
add-zsh-hook preexec _mb_activity_preexec
add-zsh-hook precmd _mb_activity_precmd
fi
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_args_are_quoted() {
        let s = script(
            Shell::Bash,
            Path::new("/opt/it's/mb-activity"),
            &["--spool".into(), "/tmp/a b".into()],
            Some("no customer\x1b[2J"),
        );
        assert!(
            s.contains("builtin printf '%s\\n' 'no customer?[2J' >&2\n__mb_activity_bin="),
            "{s}"
        );
        assert!(
            s.contains(r"__mb_activity_bin='/opt/it'\''s/mb-activity'"),
            "{s}"
        );
        assert!(
            s.contains("__mb_activity_args=('--spool' '/tmp/a b')"),
            "{s}"
        );
        let z = script(Shell::Zsh, Path::new("/bin/mb-activity"), &[], None);
        assert!(z.contains("typeset -ga _mb_activity_args=()"), "{z}");
        assert!(!z.contains("@BIN@") && !z.contains("@ARGS@"), "{z}");
    }
}
