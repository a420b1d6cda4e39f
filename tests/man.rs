//! The checked-in man pages must match the clap definitions.
//! `MB_UPDATE_MAN=1 cargo test --test integration man` rewrites them.

use std::path::Path;

fn render(cmd: clap::Command) -> String {
    let man = clap_mangen::Man::new(cmd.clone());
    let mut buf: Vec<u8> = Vec::new();
    man.render_title(&mut buf).unwrap();
    man.render_name_section(&mut buf).unwrap();
    man.render_synopsis_section(&mut buf).unwrap();
    man.render_description_section(&mut buf).unwrap();
    man.render_options_section(&mut buf).unwrap();
    man.render_subcommands_section(&mut buf).unwrap();
    let mut s = String::from_utf8(buf).unwrap();
    let mut sec = |title: &str, body: &str| {
        s.push_str(&format!(".SH {title}\n"));
        for line in body.lines() {
            let l = line.replace('\\', "\\\\");
            let l = if l.starts_with('.') || l.starts_with('\'') {
                format!("\\&{l}")
            } else {
                l
            };
            s.push_str(&format!("{l}\n.br\n"));
        }
    };
    if let Some(ex) = cmd.get_after_long_help() {
        let text = ex.to_string();
        let body = text
            .trim_start_matches("EXAMPLES:")
            .trim_start_matches('\n');
        sec("EXAMPLES", body);
    }
    sec("EXIT STATUS", mb::cli::EXIT_STATUS);
    sec(
        "SEE ALSO",
        "mb-events(5), mb-ingest(1), mb-customer(1), mb-sample(1), mb-tokens(1), mb-activity(1), mb-report(1), mb-dashboard(1)",
    );
    s
}

#[test]
fn man_pages_are_current() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("man");
    let update = std::env::var_os("MB_UPDATE_MAN").is_some();
    let mut stale = Vec::new();
    for cmd in mb::cli::commands() {
        let name = cmd.get_name().to_string();
        let page = render(cmd);
        let path = dir.join(format!("{name}.1"));
        if update {
            std::fs::write(&path, &page).unwrap();
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(page.as_str()) {
            stale.push(name);
        }
    }
    assert!(
        stale.is_empty(),
        "stale man pages {stale:?}: run MB_UPDATE_MAN=1 cargo test --test integration man"
    );
}

#[test]
fn every_command_is_well_formed_and_has_examples() {
    for cmd in mb::cli::commands() {
        cmd.clone().debug_assert();
        let name = cmd.get_name().to_string();
        let help = cmd
            .get_after_long_help()
            .map(|h| h.to_string())
            .unwrap_or_default();
        assert!(help.contains("EXAMPLES"), "{name} --help has no EXAMPLES");
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
