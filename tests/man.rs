//! The checked-in man pages and shell completions must match the clap
//! definitions. `MB_UPDATE_MAN=1 cargo test --test integration man`
//! rewrites both (man/*.1 and completions/*); the tests fail on a stale,
//! missing or orphaned file.
//!
//! This file is the generator (clap_mangen and clap_complete stay
//! dev-dependencies, out of release builds). Pages follow git's layout:
//! one page per tool (`mb-report.1`) with its own options and a list of
//! subcommands, and one page per subcommand (`mb-report-invoice.1`) with
//! every option it takes, the tool's global ones included. EXAMPLES are
//! no-fill blocks with every `-` escaped, so man neither fills, breaks nor
//! hyphenates a command (a pasted `us‐age.jsonl` with U+2010 fails).

use std::collections::BTreeMap;
use std::path::Path;

use clap_complete::Shell;

/// Escape one line of text for roff: backslashes, minus signs (else groff
/// prints U+2010 hyphens in UTF-8), and a leading control character.
fn roff_line(line: &str) -> String {
    let l = line.replace('\\', "\\e").replace('-', "\\-");
    if l.starts_with('.') || l.starts_with('\'') {
        format!("\\&{l}")
    } else {
        l
    }
}

/// The EXAMPLES text of `--help` (after the `EXAMPLES:` header), with the
/// common indentation removed.
fn examples_of(cmd: &clap::Command) -> Option<String> {
    let text = cmd.get_after_long_help()?.to_string();
    let body = text.trim_start_matches("EXAMPLES:").trim_matches('\n');
    let indent = body
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    Some(
        body.lines()
            .map(|l| l.get(indent..).unwrap_or("").trim_end())
            .collect::<Vec<_>>()
            .join("\n"),
    )
}

/// The blocks (paragraphs) of `examples` that run `tool sub`: a subcommand
/// without EXAMPLES of its own shows its tool's examples for it.
fn examples_for(examples: &str, tool: &str, sub: &str) -> Option<String> {
    let needle = format!("{tool} {sub}");
    let blocks: Vec<&str> = examples
        .split("\n\n")
        .filter(|b| {
            b.lines().any(|l| {
                !l.trim_start().starts_with('#')
                    && l.split_whitespace()
                        .collect::<Vec<_>>()
                        .windows(2)
                        .any(|w| format!("{} {}", w[0], w[1]) == needle)
            })
        })
        .collect();
    (!blocks.is_empty()).then(|| blocks.join("\n\n"))
}

/// Append `.SH title` with `body` as a no-fill, indented block.
fn nofill_section(s: &mut String, title: &str, body: &str) {
    s.push_str(&format!(".SH {title}\n.RS 4\n.nf\n"));
    for line in body.lines() {
        if line.trim().is_empty() {
            s.push_str(".sp\n");
        } else {
            s.push_str(&roff_line(line));
            s.push('\n');
        }
    }
    s.push_str(".fi\n.RE\n");
}

/// The EXIT STATUS section, one tagged paragraph per status.
fn exit_status_section(s: &mut String) {
    s.push_str(".SH \"EXIT STATUS\"\n");
    for line in mb::cli::EXIT_STATUS.lines() {
        let (code, text) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        s.push_str(&format!(".TP\n.B {code}\n{}\n", roff_line(text.trim())));
    }
}

/// Render one page. `parent` is the tool for a subcommand page; `tools`
/// are the names of every tool, for SEE ALSO.
fn render_page(
    cmd: &clap::Command,
    page: &str,
    parent: Option<(&str, &clap::Command)>,
    tools: &[String],
) -> (String, Option<String>) {
    let version = env!("CARGO_PKG_VERSION");
    let man = clap_mangen::Man::new(cmd.clone())
        .title(page)
        .source(format!("mb {version}"))
        .manual("mb manual");
    let mut buf: Vec<u8> = Vec::new();
    man.render_title(&mut buf).unwrap();
    // No hyphenation and ragged right anywhere on the page (as git's pages
    // do): options, paths and names are copied from man pages.
    buf.extend_from_slice(b".nh\n.ad l\n");
    man.render_name_section(&mut buf).unwrap();
    man.render_synopsis_section(&mut buf).unwrap();
    man.render_description_section(&mut buf).unwrap();
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(&mut buf).unwrap();
    }
    let subs: Vec<&clap::Command> = cmd.get_subcommands().filter(|c| !c.is_hide_set()).collect();
    if !subs.is_empty() {
        // Each entry names a page that exists: every visible subcommand
        // gets one below.
        man.render_subcommands_section(&mut buf).unwrap();
    }
    let mut s = String::from_utf8(buf).unwrap();
    let examples = match parent {
        None => examples_of(cmd),
        Some((tool, pcmd)) => examples_of(cmd)
            .or_else(|| examples_of(pcmd).and_then(|e| examples_for(&e, tool, cmd.get_name()))),
    };
    if let Some(ex) = &examples {
        nofill_section(&mut s, "EXAMPLES", ex);
    }
    exit_status_section(&mut s);
    let mut see: Vec<String> = Vec::new();
    match parent {
        Some((tool, _)) => see.push(format!("{tool}(1)")),
        None => see.extend(
            subs.iter()
                .map(|c| format!("{}-{}(1)", cmd.get_name(), c.get_name())),
        ),
    }
    see.push("mb-events(5)".into());
    let me = parent.map_or(cmd.get_name(), |p| p.0);
    see.extend(tools.iter().filter(|t| *t != me).map(|t| format!("{t}(1)")));
    s.push_str(&format!(
        ".SH \"SEE ALSO\"\n{}\n",
        roff_line(&see.join(", "))
    ));
    (s, examples)
}

/// Every generated page: file name -> content.
fn pages() -> BTreeMap<String, String> {
    generated().into_iter().map(|(f, (t, _))| (f, t)).collect()
}

/// Every generated page: file name -> (content, the EXAMPLES text shown).
fn generated() -> BTreeMap<String, (String, Option<String>)> {
    let cmds: Vec<clap::Command> = mb::cli::commands()
        .into_iter()
        .map(|c| {
            // build() propagates global options into the subcommands and
            // names them `mb-report invoice` / `mb-report-invoice`.
            let mut c = c.disable_help_subcommand(true);
            c.build();
            c
        })
        .collect();
    let tools: Vec<String> = cmds.iter().map(|c| c.get_name().to_string()).collect();
    let mut out = BTreeMap::new();
    for cmd in &cmds {
        let name = cmd.get_name().to_string();
        out.insert(format!("{name}.1"), render_page(cmd, &name, None, &tools));
        for sub in cmd.get_subcommands().filter(|c| !c.is_hide_set()) {
            let page = format!("{name}-{}", sub.get_name());
            out.insert(
                format!("{page}.1"),
                render_page(sub, &page, Some((&name, cmd)), &tools),
            );
        }
    }
    out
}

/// Every completion script: file name -> content (bash-completion, zsh
/// and fish naming, so install.sh copies them as they are).
fn completions() -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for cmd in mb::cli::commands() {
        let name = cmd.get_name().to_string();
        for (shell, file) in [
            (Shell::Bash, format!("{name}.bash")),
            (Shell::Zsh, format!("_{name}")),
            (Shell::Fish, format!("{name}.fish")),
        ] {
            let mut c = cmd.clone();
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut c, &name, &mut buf);
            out.insert(file, String::from_utf8(buf).unwrap());
        }
    }
    out
}

/// Compare `want` with the files of `dir` accepted by `ours`; rewrite them
/// under MB_UPDATE_MAN. Returns what is stale, missing or orphaned.
fn check_dir(dir: &Path, want: &BTreeMap<String, String>, ours: fn(&str) -> bool) -> Vec<String> {
    let update = std::env::var_os("MB_UPDATE_MAN").is_some();
    std::fs::create_dir_all(dir).unwrap();
    let mut bad = Vec::new();
    for (file, text) in want {
        let path = dir.join(file);
        if update {
            std::fs::write(&path, text).unwrap();
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            bad.push(format!("stale or missing {}", path.display()));
        }
    }
    for e in std::fs::read_dir(dir).unwrap() {
        let file = e.unwrap().file_name().to_string_lossy().into_owned();
        if ours(&file) && !want.contains_key(&file) {
            if update {
                std::fs::remove_file(dir.join(&file)).unwrap();
            } else {
                bad.push(format!(
                    "orphaned {}/{file} (no such command)",
                    dir.display()
                ));
            }
        }
    }
    bad
}

#[test]
fn man_pages_are_current() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("man");
    // mb-events.5 is written by hand; every *.1 is generated.
    let bad = check_dir(&dir, &pages(), |f| f.ends_with(".1"));
    assert!(
        bad.is_empty(),
        "{bad:#?}\nrun MB_UPDATE_MAN=1 cargo test --test integration man"
    );
}

#[test]
fn completions_are_current() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("completions");
    let bad = check_dir(&dir, &completions(), |f| f.contains("mb-"));
    assert!(
        bad.is_empty(),
        "{bad:#?}\nrun MB_UPDATE_MAN=1 cargo test --test integration man"
    );
}

#[test]
fn every_subcommand_option_is_on_a_page_and_every_listed_page_exists() {
    let pages = pages();
    for cmd in mb::cli::commands() {
        let mut cmd = cmd.disable_help_subcommand(true);
        cmd.build();
        let tool = cmd.get_name().to_string();
        let page = &pages[&format!("{tool}.1")];
        for sub in cmd.get_subcommands().filter(|c| !c.is_hide_set()) {
            let name = format!("{tool}-{}", sub.get_name());
            assert!(
                page.contains(&format!("{}(1)", name.replace('-', "\\-"))),
                "{tool}.1 does not list {name}(1)"
            );
            let sub_page = pages
                .get(&format!("{name}.1"))
                .unwrap_or_else(|| panic!("{tool}.1 lists {name}(1), which is not generated"));
            for a in sub.get_arguments().filter(|a| !a.is_hide_set()) {
                if let Some(long) = a.get_long() {
                    let roff = format!("\\fB\\-\\-{}\\fR", long.replace('-', "\\-"));
                    assert!(sub_page.contains(&roff), "{name}.1 lacks --{long}");
                }
            }
        }
    }
    // Every page the SEE ALSO or SUBCOMMANDS of any page names exists.
    let names = regex::Regex::new(r"(mb(?:\\-[a-z]+)+)\((\d)\)").unwrap();
    for (file, text) in &pages {
        for c in names.captures_iter(text) {
            let target = format!("{}.{}", c[1].replace("\\-", "-"), &c[2]);
            assert!(
                pages.contains_key(&target) || target == "mb-events.5",
                "{file} names {target}, which does not exist"
            );
        }
    }
}

#[test]
fn examples_render_unbroken_by_man() {
    // The real renderer: groff, as man(1) runs it, in UTF-8 at 80 columns.
    // Every command line of an EXAMPLES block must come out exactly as in
    // --help: no hyphenation (U+2010), no filled or broken lines.
    let pages = generated();
    let have_groff = std::process::Command::new("groff")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        have_groff,
        "groff is needed to check the man pages: apt-get install -y groff"
    );
    let dir = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for (file, (text, examples)) in &pages {
        let Some(ex) = examples else { continue };
        // The source: the examples are a no-fill block.
        let start = text.find(".SH EXAMPLES\n").expect("EXAMPLES section");
        assert!(
            text[start..].starts_with(".SH EXAMPLES\n.RS 4\n.nf\n"),
            "{file}: EXAMPLES not no-fill"
        );
        let path = dir.path().join(file);
        std::fs::write(&path, text).unwrap();
        let o = std::process::Command::new("groff")
            .args(["-man", "-Tutf8", "-rLL=80n", "-P", "-cbou"])
            .arg(&path)
            .output()
            .unwrap();
        let rendered = String::from_utf8(o.stdout).unwrap();
        assert!(
            !rendered.contains('\u{2010}'),
            "{file}: man prints U+2010 hyphens"
        );
        for line in ex.lines().filter(|l| !l.trim().is_empty()) {
            assert!(
                rendered.lines().any(|r| r.trim() == line.trim()),
                "{file}: example line not rendered verbatim: {line:?}\n{rendered}"
            );
        }
        checked += 1;
    }
    assert!(checked >= 7, "only {checked} pages with examples");
}

#[test]
fn every_command_is_well_formed_and_has_examples() {
    for cmd in mb::cli::commands() {
        cmd.clone().debug_assert();
        let name = cmd.get_name().to_string();
        let mut all = vec![(name.clone(), cmd.clone())];
        all.extend(
            cmd.get_subcommands()
                .map(|s| (format!("{name} {}", s.get_name()), s.clone())),
        );
        let help = cmd
            .get_after_long_help()
            .map(|h| h.to_string())
            .unwrap_or_default();
        assert!(help.contains("EXAMPLES"), "{name} --help has no EXAMPLES");
        for (who, c) in all {
            let Some(ex) = c.get_after_long_help().map(|h| h.to_string()) else {
                continue;
            };
            for line in ex.lines() {
                // clap wraps help text at the terminal width: a line of
                // more than 79 columns would be broken in two on an
                // 80-column terminal, and the pasted command would fail.
                assert!(
                    line.chars().count() <= 79,
                    "{who} --help: example line of {} columns (at most 79; split it with \\): {line}",
                    line.chars().count()
                );
                // The installed names, not the repository's script files.
                assert!(
                    !line.contains("stripe-upload.") && !line.contains("setup_cron.sh "),
                    "{who} --help: names a script file, not the installed program: {line}"
                );
            }
        }
    }
}

#[test]
fn events_page_documents_every_field_and_its_examples_parse() {
    let page =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("man/mb-events.5"))
            .unwrap();
    let now = mb::time::parse_rfc3339("2026-11-28T00:00:00Z").unwrap();
    let mut kinds = 0;
    for line in page.lines().filter(|l| l.starts_with("{\"v\":1")) {
        // Each example is valid, and writing it back gives the same line.
        let ev = mb::events::parse_line(line, now).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert_eq!(ev.to_json(), line);
        kinds += 1;
        // Every field the writer emits is documented.
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        for key in v.as_object().unwrap().keys() {
            assert!(
                page.contains(&format!("B {key}"))
                    || page.contains(&format!("fB{key}\\fR"))
                    || page.contains(&format!("\\fB{key}")),
                "mb-events(5) does not document {key}"
            );
        }
    }
    assert_eq!(kinds, 3);
}
