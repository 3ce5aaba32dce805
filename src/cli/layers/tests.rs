use super::*;
use crate::cli::Cli;
use clap::{CommandFactory, Parser};
use std::collections::HashMap;

fn os(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

fn text(argv: &[OsString]) -> Vec<String> {
    argv.iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect()
}

fn root() -> Command {
    let mut c = Cli::command();
    c.build();
    c
}

/// The settings `toml` gives the command at `path`, as argument strings.
fn from_toml(path: &[&str], toml: &str) -> Result<Vec<String>, LayerError> {
    let path: Vec<String> = path.iter().map(|s| s.to_string()).collect();
    let settings = file_settings(&root(), &path, toml, Path::new("/cfg/config.toml"))?;
    Ok(settings
        .into_iter()
        .flat_map(|s| s.args)
        .map(|a| a.to_string_lossy().into_owned())
        .collect())
}

/// Runs `merge` with these variables as the whole environment.
fn merged(args: &[&str], vars: &[(&str, &str)]) -> Result<Merged, LayerError> {
    let vars: HashMap<String, OsString> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), OsString::from(v)))
        .collect();
    merge(&Cli::command(), os(args), &|k| vars.get(k).cloned())
}

#[test]
fn top_level_keys_reach_every_command_with_the_flag_and_tables_win() {
    let toml = r#"
        index = ["a:1024", "b:1024"]
        max-sources = 4
        [peer]
        max-sources = 2
        no-console = true
        listen = 1025
    "#;
    let mut peer = from_toml(&["peer"], toml).unwrap();
    peer.sort();
    assert_eq!(
        peer,
        [
            "--index=a:1024",
            "--index=b:1024",
            "--listen=1025",
            "--max-sources=2",
            "--no-console",
        ]
    );
    let mut get = from_toml(&["get"], toml).unwrap();
    get.sort();
    assert_eq!(get, ["--index=a:1024", "--index=b:1024", "--max-sources=4"]);
    // `status` has neither flag: the keys are valid, and do not apply.
    assert!(from_toml(&["status"], toml).unwrap().is_empty());
}

#[test]
fn nested_tables_follow_the_command_path_and_false_switches_add_nothing() {
    let toml = "[bench.overlay]\npeers = 50\nliveness = \"classic\"\njson = false\n\
                [bench.index]\nconnections = 3\n";
    let mut overlay = from_toml(&["bench", "overlay"], toml).unwrap();
    overlay.sort();
    assert_eq!(overlay, ["--liveness=classic", "--peers=50"]);
    assert_eq!(
        from_toml(&["bench", "index"], toml).unwrap(),
        ["--connections=3"]
    );
    assert_eq!(
        from_toml(&["peer"], "verbose = 2").unwrap(),
        ["--verbose", "--verbose"]
    );
}

#[test]
fn unknown_keys_and_tables_name_the_file_the_key_and_the_command() {
    let e = from_toml(&["peer"], "[peer]\nmax-source = 4\n").unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, LayerError::UnknownKey { .. }), "{msg}");
    assert!(msg.contains("/cfg/config.toml"), "{msg}");
    assert!(msg.contains("'max-source'"), "{msg}");
    assert!(msg.contains("`p2pshare peer`"), "{msg}");

    // Every table is checked, not only the running command's.
    let msg = from_toml(&["peer"], "[index]\nlisten = 1\nmax-sources = 4\n")
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("`p2pshare index` has no --max-sources"),
        "{msg}"
    );

    let msg = from_toml(&["get"], "max_sources = 4\n")
        .unwrap_err()
        .to_string();
    assert!(msg.contains("nor does any of its commands"), "{msg}");
    assert!(msg.contains("did you mean 'max-sources'"), "{msg}");

    let msg = from_toml(&["get"], "[pear]\ndir = \"x\"\n")
        .unwrap_err()
        .to_string();
    assert!(msg.contains("unknown table [pear]"), "{msg}");
    let msg = from_toml(&["get"], "[bench.overlays]\n")
        .unwrap_err()
        .to_string();
    assert!(msg.contains("unknown table [bench.overlays]"), "{msg}");
}

#[test]
fn a_top_level_list_that_does_not_fit_a_command_can_be_replaced_in_its_table() {
    // `bench index` takes one --index; peers take a list.
    let toml = "index = [\"a:1\", \"b:2\"]\n";
    let msg = from_toml(&["bench", "index"], toml)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("(index)"), "{msg}");
    assert!(msg.contains("give it one in [bench.index]"), "{msg}");
    let fixed = format!("{toml}[bench.index]\nindex = \"c:3\"\n");
    assert_eq!(
        from_toml(&["bench", "index"], &fixed).unwrap(),
        ["--index=c:3"]
    );
    assert_eq!(
        from_toml(&["peer"], &fixed).unwrap(),
        ["--index=a:1", "--index=b:2"]
    );
}

#[test]
fn values_of_the_wrong_shape_are_refused_with_their_key() {
    let msg = from_toml(&["peer"], "[peer]\nlisten = [\"a:1\", \"b:2\"]\n")
        .unwrap_err()
        .to_string();
    assert!(msg.contains("([peer] listen)"), "{msg}");
    assert!(msg.contains("takes one value, not a list"), "{msg}");
    let msg = from_toml(&["peer"], "no-console = 1\n")
        .unwrap_err()
        .to_string();
    assert!(msg.contains("takes true or false"), "{msg}");
    let msg = from_toml(&["peer"], "config = \"other.toml\"\n")
        .unwrap_err()
        .to_string();
    assert!(msg.contains("cannot name another"), "{msg}");
    assert!(matches!(
        from_toml(&["peer"], "index = [").unwrap_err(),
        LayerError::Syntax { .. }
    ));
}

#[test]
fn the_command_line_beats_the_environment_which_beats_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    std::fs::write(
        &file,
        "index = [\"file:1\"]\nmax-sources = 3\nconnect-timeout = \"9s\"\n",
    )
    .unwrap();
    let f = file.to_str().unwrap();
    let m = merged(
        &["p2pshare", "get", "x", "--config", f, "--max-sources", "5"],
        &[
            ("P2PSHARE_INDEX", "env1:1, env2:2"),
            ("P2PSHARE_MAX_SOURCES", "7"),
        ],
    )
    .unwrap();
    assert_eq!(
        text(&m.argv),
        [
            "p2pshare",
            "get",
            "x",
            "--config",
            f,
            "--max-sources",
            "5",
            "--index=env1:1",
            "--index=env2:2",
            "--connect-timeout=9s",
        ]
    );
    let explained = m.explain("error: invalid value 'x' for '--connect-timeout <CONNECT_TIMEOUT>'");
    assert!(
        explained.unwrap().contains("--connect-timeout came from"),
        "a bad value from the file is traced to it"
    );
    assert_eq!(m.explain("error: invalid value for '--seeds'"), None);
}

#[test]
fn a_flag_on_the_command_line_hides_the_flags_it_conflicts_with() {
    let m = merged(
        &["p2pshare", "-q", "search", "x"],
        &[("P2PSHARE_VERBOSE", "2")],
    )
    .unwrap();
    assert_eq!(text(&m.argv), ["p2pshare", "-q", "search", "x"]);
    let m = merged(&["p2pshare", "search", "x"], &[("P2PSHARE_VERBOSE", "2")]).unwrap();
    assert_eq!(
        text(&m.argv),
        ["p2pshare", "search", "x", "--verbose", "--verbose"]
    );
}

#[test]
fn merged_flags_go_before_a_double_dash() {
    let m = merged(
        &["p2pshare", "search", "--", "-draft"],
        &[("P2PSHARE_LIMIT", "5"), ("P2PSHARE_JSON", "yes")],
    )
    .unwrap();
    assert_eq!(
        text(&m.argv),
        ["p2pshare", "search", "--limit=5", "--json", "--", "-draft"]
    );
}

#[test]
fn required_flags_may_come_from_the_environment() {
    // `peer` requires --dir: the command line alone would not parse.
    let m = merged(&["p2pshare", "peer"], &[("P2PSHARE_DIR", "/srv/share")]).unwrap();
    assert_eq!(text(&m.argv), ["p2pshare", "peer", "--dir=/srv/share"]);
    let cli = Cli::try_parse_from(&m.argv).unwrap();
    assert!(matches!(cli.command, crate::cli::Command::Peer(_)));
}

#[test]
fn help_and_errors_are_left_to_the_real_parse() {
    for args in [
        &["p2pshare"][..],
        &["p2pshare", "--help"],
        &["p2pshare", "peer", "--help"],
        &["p2pshare", "peer", "--no-such-flag"],
    ] {
        let m = merged(args, &[("P2PSHARE_DIR", "/srv")]).unwrap();
        assert_eq!(text(&m.argv), args, "{args:?}");
    }
}

#[test]
fn bad_switch_values_in_the_environment_name_the_variable() {
    let msg = merged(&["p2pshare", "search", "x"], &[("P2PSHARE_JSON", "maybe")])
        .unwrap_err()
        .to_string();
    assert!(msg.contains("P2PSHARE_JSON"), "{msg}");
    assert!(msg.contains("true or false"), "{msg}");
}

#[test]
fn the_config_file_is_the_flag_then_the_variable_then_the_users_own() {
    let dir = tempfile::tempdir().unwrap();
    let xdg = dir.path().join("xdg");
    std::fs::create_dir_all(xdg.join("p2pshare")).unwrap();
    std::fs::write(xdg.join("p2pshare/config.toml"), "limit = 1\n").unwrap();
    let named = dir.path().join("named.toml");
    std::fs::write(&named, "limit = 2\n").unwrap();
    let flag = dir.path().join("flag.toml");
    std::fs::write(&flag, "limit = 3\n").unwrap();
    let (xdg, named, flag) = (
        xdg.to_str().unwrap(),
        named.to_str().unwrap(),
        flag.to_str().unwrap(),
    );
    let limit = |args: &[&str], vars: &[(&str, &str)]| {
        let m = merged(args, vars).unwrap();
        text(&m.argv)
            .into_iter()
            .find(|a| a.starts_with("--limit="))
    };
    let search = ["p2pshare", "search", "x"];
    assert_eq!(
        limit(&search, &[("XDG_CONFIG_HOME", xdg)]).unwrap(),
        "--limit=1"
    );
    assert_eq!(
        limit(
            &search,
            &[("XDG_CONFIG_HOME", xdg), ("P2PSHARE_CONFIG", named)]
        )
        .unwrap(),
        "--limit=2"
    );
    assert_eq!(
        limit(
            &["p2pshare", "search", "x", "--config", flag],
            &[("XDG_CONFIG_HOME", xdg), ("P2PSHARE_CONFIG", named)]
        )
        .unwrap(),
        "--limit=3"
    );
    // Without XDG_CONFIG_HOME, HOME/.config; no file there is no configuration.
    assert_eq!(
        limit(&search, &[("HOME", dir.path().to_str().unwrap())]),
        None
    );
    assert_eq!(
        user_config_path(&|k| (k == "HOME").then(|| OsString::from("/home/ann"))),
        Some(PathBuf::from("/home/ann/.config/p2pshare/config.toml"))
    );
    // A file named explicitly must exist.
    let e = merged(
        &["p2pshare", "search", "x", "--config", "/no/such.toml"],
        &[],
    )
    .unwrap_err();
    assert!(e.to_string().contains("/no/such.toml"), "{e}");
}
