//! The references under docs/reference/ are what the code writes (src/reference.rs): a
//! renamed flag, a new variable, metric or error code fails here until `scripts/reference`
//! rewrites them. Also: the completion script the binary prints completes subcommands.

use std::path::Path;
use std::process::Command;

fn reference_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/reference")
}

#[test]
fn every_reference_is_what_the_code_writes() {
    let update = std::env::var_os("UPDATE_REFERENCE").is_some();
    let mut stale = Vec::new();
    for (name, text) in contact_import::reference::all() {
        let path = reference_dir().join(name);
        if update {
            std::fs::write(&path, &text).unwrap();
            continue;
        }
        let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
        if checked_in != text {
            stale.push(name);
        }
    }
    assert!(
        stale.is_empty(),
        "docs/reference/{{{}}} differ from what the code writes: run scripts/reference and commit the result",
        stale.join(",")
    );
}

#[test]
fn the_bash_completion_completes_subcommands_and_flags() {
    let script = Command::new(env!("CARGO_BIN_EXE_contact-import"))
        .args(["completions", "bash"])
        .output()
        .unwrap();
    assert!(script.status.success());
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let file = dir.join("contact-import.bash");
    std::fs::write(&file, &script.stdout).unwrap();
    // As bash calls it when Tab is pressed after the words typed so far.
    let complete = |words: &str| {
        let cword = words.split(' ').count() - 1;
        let output = Command::new("bash")
            .arg("-c")
            .arg(format!(
                "source {}; COMP_WORDS=({words}); COMP_CWORD={cword}; COMP_LINE='{words}'; \
                 COMP_POINT=${{#COMP_LINE}}; \
                 _contact__import contact-import \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"; \
                 printf '%s\\n' \"${{COMPREPLY[@]}}\"",
                file.display()
            ))
            .output()
            .unwrap();
        let said = String::from_utf8(output.stdout).unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        said
    };
    let subcommands = complete("contact-import con");
    assert!(
        subcommands.lines().any(|l| l == "console")
            && subcommands.lines().any(|l| l == "console-users"),
        "{subcommands}"
    );
    let flags = complete("contact-import batches prune --old");
    assert!(flags.lines().any(|l| l == "--older-than"), "{flags}");
}
