//! The command line a new user meets: configuration files, `P2PSHARE_*` variables and
//! their precedence, `--listen` forms, log verbosity, completions and the man page.

use crate::util::*;
use std::fs;
use std::path::Path;

/// Nothing listens on port 9 (discard) here.
const DEAD: &str = "127.0.0.1:9";

/// `p2pshare search x` with these variables and extra flags: Ok(stdout) when it
/// reached an index, Err(stderr) when it did not.
fn search(cwd: &Path, envs: &[(&str, &str)], extra: &[&str]) -> Result<String, String> {
    let (code, out, err) = Args::search("x").args(extra).run_with_env(envs, cwd);
    match code {
        0 => Ok(out),
        1 => Err(err),
        _ => panic!("search {extra:?} exited {code}: {err}"),
    }
}

#[test]
fn config_file_then_environment_then_command_line_choose_the_index() {
    let root = tempfile::tempdir().unwrap();
    let index = index(root.path(), &[]);
    let live = index.addr_str();
    let file_with = |name: &str, addr: &str| {
        let path = root.path().join(name);
        fs::write(&path, format!("index = [\"{addr}\"]\n")).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let live_file = file_with("live.toml", &live);
    let dead_file = file_with("dead.toml", DEAD);
    let cwd = root.path();

    // The file alone decides (there is no config/index.txt in a temporary folder).
    let out = search(cwd, &[], &["--config", &live_file]).unwrap();
    assert!(out.contains("no file matches 'x'"), "{out}");
    let err = search(cwd, &[], &["--config", &dead_file]).unwrap_err();
    assert!(err.contains(DEAD), "{err}");

    // The environment overrides the file, both ways.
    search(cwd, &[("P2PSHARE_INDEX", &live)], &["--config", &dead_file]).unwrap();
    let err = search(cwd, &[("P2PSHARE_INDEX", DEAD)], &["--config", &live_file]).unwrap_err();
    assert!(err.contains(DEAD), "{err}");

    // The command line overrides the environment, both ways; a repeatable flag given
    // there replaces the environment's list instead of adding to it.
    search(cwd, &[("P2PSHARE_INDEX", DEAD)], &["--index", &live]).unwrap();
    let both = format!("{live},{live}");
    let err = search(cwd, &[("P2PSHARE_INDEX", &both)], &["--index", DEAD]).unwrap_err();
    assert!(err.contains(DEAD), "{err}");
}

#[test]
fn the_per_user_config_file_is_read_unless_another_is_named() {
    let root = tempfile::tempdir().unwrap();
    let index = index(root.path(), &[]);
    let xdg = root.path().join("xdg");
    fs::create_dir_all(xdg.join("p2pshare")).unwrap();
    fs::write(
        xdg.join("p2pshare/config.toml"),
        format!("[search]\nindex = [\"{}\"]\n", index.addr_str()),
    )
    .unwrap();
    let xdg = xdg.to_str().unwrap();
    search(root.path(), &[("XDG_CONFIG_HOME", xdg)], &[]).unwrap();

    // Without XDG_CONFIG_HOME, the file is looked for in ~/.config.
    let home = root.path().join("home");
    fs::create_dir_all(home.join(".config")).unwrap();
    fs::rename(
        root.path().join("xdg/p2pshare"),
        home.join(".config/p2pshare"),
    )
    .unwrap();
    let home_env = [("XDG_CONFIG_HOME", ""), ("HOME", home.to_str().unwrap())];
    search(root.path(), &home_env, &[]).unwrap();

    // P2PSHARE_CONFIG, like --config, replaces the per-user file.
    let other = root.path().join("other.toml");
    fs::write(&other, format!("index = [\"{DEAD}\"]\n")).unwrap();
    let other = other.to_str().unwrap();
    let named = [home_env[0], home_env[1], ("P2PSHARE_CONFIG", other)];
    assert!(search(root.path(), &named, &[]).unwrap_err().contains(DEAD));
    assert!(search(root.path(), &home_env, &["--config", other])
        .unwrap_err()
        .contains(DEAD));
}

#[test]
fn a_config_file_sets_up_a_peer_with_its_table() {
    let root = tempfile::tempdir().unwrap();
    let dirs = sample_peers(root.path());
    let index = index(root.path(), &[]);
    let config = root.path().join("peer.toml");
    fs::write(
        &config,
        format!(
            "index = [\"{}\"]\nmax-sources = 4\n\n[peer]\ndir = \"{}\"\nlisten = \"localhost:0\"\n\
             name = \"from-the-file\"\nno-console = true\nliveness = \"classic\"\n",
            index.addr_str(),
            dirs[0].display()
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    // Every required flag comes from the file: the command line is only `peer`.
    let mut peer = Proc::start_with_env(
        "peer",
        &["peer"],
        &[("P2PSHARE_CONFIG", config)],
        root.path(),
        false,
    );
    assert!(peer.addr.ip().is_loopback(), "{}", peer.addr);
    peer.wait_line(|l| l.contains(": connected,"));
    let ready = peer.seen.lock().unwrap().join("\n");
    assert!(ready.contains("peer 'from-the-file'"), "{ready}");
    eventually("the peer's files on the index", DEADLINE, || {
        holders(index.addr, "onekb.txt") == ["from-the-file"]
    });
}

#[test]
fn unknown_config_keys_exit_2_naming_the_key_the_file_and_the_command() {
    let root = tempfile::tempdir().unwrap();
    let config = root.path().join("bad.toml");
    fs::write(&config, "[get]\nmax-source = 4\n").unwrap();
    let config = config.to_str().unwrap();
    let (code, out, err) = run(&["get", "x", "--config", config], root.path());
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("unknown key 'max-source'"), "{err}");
    assert!(err.contains(config), "{err}");
    assert!(err.contains("`p2pshare get`"), "{err}");

    // A value clap refuses is traced back to where it came from.
    fs::write(root.path().join("bad.toml"), "[get]\nmax-sources = 100\n").unwrap();
    let (code, _, err) = run(&["get", "x", "--config", config], root.path());
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&format!(
            "--max-sources came from {config} ([get] max-sources)"
        )),
        "{err}"
    );
    let (code, _, err) = run_with_env(
        &["get", "x"],
        &[("P2PSHARE_CONNECT_TIMEOUT", "soon")],
        root.path(),
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--connect-timeout came from environment variable P2PSHARE_CONNECT_TIMEOUT"),
        "{err}"
    );
}

#[test]
fn listen_takes_host_names_for_every_server_and_refuses_bad_values() {
    let root = tempfile::tempdir().unwrap();
    let dirs = sample_peers(root.path());
    let index = Args::index_server()
        .listen("localhost:0")
        .flag("--db", ":memory:")
        .start("index", root.path());
    assert!(index.addr.ip().is_loopback(), "{}", index.addr);
    let seed = Args::seed_server()
        .listen("localhost:0")
        .start("seed", root.path());
    assert!(seed.addr.ip().is_loopback(), "{}", seed.addr);
    let peer = Args::peer_sharing(&dirs[0])
        .listen("localhost:0")
        .index(index.addr)
        .no_console()
        .start("peer", root.path());
    assert!(peer.addr.ip().is_loopback(), "{}", peer.addr);

    for (bad, why) in [
        ("nohost", "is not HOST:PORT or a port number"),
        ("70000", "is not HOST:PORT or a port number"),
        (
            "no-such-host.invalid:1",
            "cannot resolve 'no-such-host.invalid'",
        ),
    ] {
        let (code, _, err) = run(&["index", "--listen", bad], root.path());
        assert_eq!(code, 2, "{bad}: {err}");
        assert!(
            err.contains("--listen") && err.contains(why),
            "{bad}: {err}"
        );
    }
}

#[test]
fn quiet_and_verbose_set_the_log_level_and_rust_log_wins() {
    let root = tempfile::tempdir().unwrap();
    // A one-shot command logs warnings by default; the unreachable index is an info.
    let logged = |envs: &[(&str, &str)], extra: &[&str]| {
        let err = search(root.path(), envs, &[&["--index", DEAD][..], extra].concat()).unwrap_err();
        err.contains("INFO") && err.contains("unavailable")
    };
    assert!(!logged(&[], &[]));
    assert!(logged(&[], &["-v"]));
    assert!(logged(&[], &["--verbose", "--verbose"]));
    assert!(logged(&[("P2PSHARE_VERBOSE", "1")], &[]));
    assert!(!logged(&[("P2PSHARE_VERBOSE", "1")], &["-q"]));
    assert!(logged(&[("RUST_LOG", "info")], &["-q"]));
}

#[test]
fn completions_and_the_man_page_come_from_the_one_definition() {
    let root = tempfile::tempdir().unwrap();
    let (code, bash, err) = run(&["completions", "bash"], root.path());
    assert_eq!(code, 0, "{err}");
    for word in [
        "peer",
        "search",
        "members",
        "--max-sources",
        "--listen",
        "--config",
    ] {
        assert!(bash.contains(word), "bash completion lacks {word}");
    }
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let (code, script, err) = run(&["completions", shell], root.path());
        assert_eq!(code, 0, "{shell}: {err}");
        assert!(script.contains("max-sources"), "{shell}");
    }
    let (code, _, err) = run(&["completions", "tcsh"], root.path());
    assert_eq!(code, 2, "{err}");

    let (code, man, err) = run(&["man"], root.path());
    assert_eq!(code, 0, "{err}");
    assert!(
        man.starts_with(".TH p2pshare 1"),
        "{}",
        &man[..man.len().min(200)]
    );
    assert!(man.contains(".SH \"P2PSHARE PEER\""), "no section for peer");
    assert!(man.contains("max\\-sources"), "no --max-sources");
}

#[test]
fn top_level_help_tells_the_configuration_order_and_every_exit_code() {
    let (code, help, _) = run(&["--help"], Path::new("."));
    assert_eq!(code, 0);
    for text in [
        "P2PSHARE_<FLAG>",
        "--config FILE",
        "~/.config/p2pshare/config.toml",
        "Precedence, highest first: the command line, the environment, the file",
        "130",
        "-q errors only",
    ] {
        assert!(help.contains(text), "--help lacks {text:?}");
    }
    for command in ["status", "say", "members"] {
        // `-h` puts the description on the flag's line.
        let (_, help, _) = run(&[command, "-h"], Path::new("."));
        let line = help.lines().find(|l| l.contains("--timeout")).unwrap_or("");
        assert!(
            line.contains("Give up"),
            "{command} --timeout has no description:\n{help}"
        );
    }
}

#[test]
fn id_prints_the_key_a_peer_then_runs_with_and_keeps_it_private() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("mine");
    fs::create_dir_all(&dir).unwrap();
    let (code, out, err) = Args::of(&["id", "--dir", dir.to_str().unwrap()]).run(root.path());
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("created a new key"), "{err}");
    let id = out.trim().to_owned();
    assert_eq!(id.len(), 52, "{out}");
    let key = dir.join(".p2pshare/node.key");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // The same id again, as JSON, and the peer started on that folder is that id.
    let (_, out, _) = Args::of(&["id", "--dir", dir.to_str().unwrap()])
        .json()
        .run(root.path());
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (v["id"].as_str(), v["created"].as_bool()),
        (Some(id.as_str()), Some(false))
    );
    let index = index(root.path(), &["--db", ":memory:"]);
    let p = peer(&dir, &index, &[]);
    assert_eq!(status_json(p.addr)["status"]["id"], id.as_str());
    // A key others can read is refused, as ssh refuses one.
    fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
    let (code, _, err) = Args::of(&["id", "--key", key.to_str().unwrap()]).run(root.path());
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("chmod 600"), "{err}");
}
