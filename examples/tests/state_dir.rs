//! `live_server`'s state dir as another user of the host would meet it: planted links,
//! a folder someone else owns or may enter, and the per-user default.
#![cfg(unix)]

mod support;

use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::Path;

use support::Launch;

fn uid() -> u32 {
    std::fs::metadata("/proc/self").unwrap().uid()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Runs `launch` and expects a refusal that names `state` and says each of `says`.
fn refused(launch: &Launch, state: &Path, says: &[&str]) {
    let (code, stderr) = launch.run_to_end();
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("`{}`", state.display())),
        "the refusal names the folder: {stderr}"
    );
    for said in says {
        assert!(stderr.contains(said), "the refusal says `{said}`: {stderr}");
    }
}

#[test]
fn a_planted_lock_or_history_link_is_never_followed() {
    let (config, state) = support::app_dirs();
    let victim_dir = tempfile::tempdir().unwrap();
    let victim = victim_dir.path().join("precious.txt");
    std::fs::write(&victim, "a file of yours").unwrap();
    for name in ["lock", "history.eac"] {
        let planted = state.path().join(name);
        symlink(&victim, &planted).unwrap();
        let (code, stderr) = Launch::new(config.path(), state.path()).run_to_end();
        assert_eq!(code, Some(1), "{name}: {stderr}");
        assert!(stderr.contains("symbolic link"), "{name}: {stderr}");
        assert_eq!(
            std::fs::read_to_string(&victim).unwrap(),
            "a file of yours",
            "{name}: the file behind the link is untouched"
        );
        std::fs::remove_file(&planted).unwrap();
    }
    // With the links gone the same folder serves.
    let server = Launch::new(config.path(), state.path()).start();
    drop(server);
}

#[test]
fn a_state_dir_others_may_enter_is_refused() {
    let (config, state) = support::app_dirs();
    // `Launch::new` makes an existing folder owner-only: loosen it after.
    let launch = Launch::new(config.path(), state.path());
    std::fs::set_permissions(state.path(), std::fs::Permissions::from_mode(0o750)).unwrap();
    let fix = format!("chmod 700 {}", state.path().display());
    refused(&launch, state.path(), &["0750", &fix]);
    assert_eq!(
        mode(state.path()),
        0o750,
        "refused, not changed behind the user's back"
    );
}

#[test]
fn a_state_dir_that_is_a_link_is_refused() {
    let (config, state) = support::app_dirs();
    let link_dir = tempfile::tempdir().unwrap();
    let link = link_dir.path().join("state");
    symlink(state.path(), &link).unwrap();
    refused(
        &Launch::new(config.path(), &link),
        &link,
        &["symbolic link"],
    );
}

/// Needs root (CI runs as root): the folder is given to another uid.
#[test]
fn a_state_dir_owned_by_another_user_is_refused() {
    assert_eq!(
        uid(),
        0,
        "this test chowns a folder to another uid: run it as root (CI does)"
    );
    let (config, state) = support::app_dirs();
    let launch = Launch::new(config.path(), state.path());
    std::os::unix::fs::chown(state.path(), Some(4242), Some(4242)).unwrap();
    let fix = format!("chown 0 {}", state.path().display());
    refused(&launch, state.path(), &["owned by uid 4242", &fix]);
    assert!(
        std::fs::read_dir(state.path()).unwrap().next().is_none(),
        "nothing was written in a folder another user owns"
    );
}

#[test]
fn the_default_state_dir_is_per_user_under_xdg_state_home() {
    let (config, _unused) = support::app_dirs();
    let xdg = eac_tests::private_dir();
    let server = Launch::bare()
        .arg("--config-dir")
        .arg(config.path().to_str().unwrap())
        .env("XDG_STATE_HOME", xdg.path().to_str().unwrap())
        .start();
    let base = xdg.path().join("eac/live_server");
    let states: Vec<_> = std::fs::read_dir(&base)
        .unwrap_or_else(|e| panic!("{}: {e}\n{}", base.display(), server.log()))
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(states.len(), 1, "{states:?}");
    assert!(states[0].join("history.eac").is_file(), "{states:?}");
    assert_eq!(mode(&states[0]), 0o700);
    server.terminate();
}

#[test]
fn without_home_the_default_is_a_per_uid_temp_folder_checked_like_the_state_dir() {
    let (config, _unused) = support::app_dirs();
    let tmp = eac_tests::private_dir();
    let launch = Launch::bare()
        .arg("--config-dir")
        .arg(config.path().to_str().unwrap())
        .env_remove("HOME")
        .env_remove("XDG_STATE_HOME")
        .env("TMPDIR", tmp.path().to_str().unwrap());
    let root = tmp.path().join(format!("eac-{}", uid()));
    // Made first by someone else (as another user would in a shared /tmp): refused.
    std::fs::create_dir(&root).unwrap();
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o777)).unwrap();
    let (code, stderr) = launch.run_to_end();
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("`{}`", root.display())),
        "{stderr}"
    );
    // Once gone, it is made owner-only and used.
    std::fs::remove_dir(&root).unwrap();
    let server = launch.start();
    assert_eq!(mode(&root), 0o700);
    let state = std::fs::read_dir(root.join("live_server"))
        .unwrap()
        .next()
        .expect("a state dir under the per-uid folder")
        .unwrap()
        .path();
    assert!(state.join("history.eac").is_file(), "{}", server.log());
    server.terminate();
}
