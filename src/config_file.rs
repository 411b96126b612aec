//! `percore serve --config FILE`: a TOML file turned into the flag tokens clap parses.
//!
//! The file's keys are the long flag names (`header-timeout = 10`, `mount = ["/a=/srv/a"]`), so
//! the README's flag tables document it and there is one parser per setting: every value goes
//! through the value parser of its flag, as read from clap's own definition of `serve`. This
//! module owns the file's rules (keys, value types, errors naming the file and the key) and the
//! precedence (command line and environment over file); it reads no flag's meaning, which stays
//! in `cli.rs`.

use std::collections::HashSet;
use std::ffi::OsString;
use std::path::Path;

use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Command};
use toml::{Table, Value};

/// Flags that make no sense inside a config file: the file itself, the dry run, and clap's own.
const NOT_IN_FILE: &[&str] = &["config", "check", "help", "version"];

/// A config file that cannot be used. Each renders as one line naming the file and, where there
/// is one, the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    #[error("--config {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("{path}:{line}:{column}: {message}")]
    Syntax {
        path: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}: unknown field \"{key}\"{}", did_you_mean(.suggestion))]
    UnknownKey {
        path: String,
        key: String,
        suggestion: Option<String>,
    },
    #[error("{path}: {key}: {reason}")]
    NotAllowed {
        path: String,
        key: String,
        reason: &'static str,
    },
    #[error("{path}: {key}: expected {expected}, got {found}")]
    WrongType {
        path: String,
        key: String,
        expected: String,
        found: &'static str,
    },
    #[error("{path}: {key}: invalid value {value:?}: {reason}")]
    InvalidValue {
        path: String,
        key: String,
        value: String,
        reason: String,
    },
}

fn did_you_mean(suggestion: &Option<String>) -> String {
    match suggestion {
        Some(s) => format!(" (did you mean \"{s}\"?)"),
        None => String::new(),
    }
}

/// One key of the file as flag tokens, with the clap id it sets (to drop it when the command
/// line or the environment sets the same flag).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileArg {
    pub id: String,
    pub tokens: Vec<OsString>,
}

/// Reads the file; the error is the OS's reason without its "(os error N)" tail.
pub fn read(path: &Path) -> Result<String, ConfigFileError> {
    std::fs::read_to_string(path).map_err(|e| {
        let reason = e.to_string();
        let reason = match reason.find(" (os error") {
            Some(at) => reason[..at].to_owned(),
            None => reason,
        };
        ConfigFileError::Read {
            path: path.display().to_string(),
            reason,
        }
    })
}

/// The file's settings as `--flag=value` tokens for `serve`, each value already accepted by its
/// flag's parser. `serve` is clap's definition of the subcommand.
pub fn to_args(path: &Path, text: &str, serve: &Command) -> Result<Vec<FileArg>, ConfigFileError> {
    let path = path.display().to_string();
    let table: Table = text.parse().map_err(|e: toml::de::Error| {
        let (line, column) = line_column(text, e.span().map_or(0, |s| s.start));
        ConfigFileError::Syntax {
            path: path.clone(),
            line,
            column,
            // toml's messages are one line today; a future multi-line one must stay one line.
            message: e.message().trim().replace('\n', "; "),
        }
    })?;
    let mut args = Vec::with_capacity(table.len());
    for (key, value) in &table {
        if value.is_table()
            || value
                .as_array()
                .is_some_and(|a| a.iter().any(Value::is_table))
        {
            return Err(ConfigFileError::NotAllowed {
                path,
                key: key.clone(),
                reason: "tables are not read: the keys are the flag names, all at the top level",
            });
        }
        let Some(arg) = file_flag(serve, key) else {
            if NOT_IN_FILE.contains(&key.as_str()) {
                return Err(ConfigFileError::NotAllowed {
                    path,
                    key: key.clone(),
                    reason: "only allowed on the command line",
                });
            }
            return Err(ConfigFileError::UnknownKey {
                suggestion: suggest(serve, key),
                path,
                key: key.clone(),
            });
        };
        let tokens = tokens_for(arg, value).map_err(|e| e.into_error(&path, key))?;
        args.push(FileArg {
            id: arg.get_id().to_string(),
            tokens,
        });
    }
    Ok(args)
}

/// The arguments of `serve` that the command line or the environment set, by clap id: the file
/// gives way to them. A repeatable flag on the command line replaces the file's list whole.
pub fn given_elsewhere(serve: &Command, matches: &ArgMatches) -> HashSet<String> {
    serve
        .get_arguments()
        .filter(|arg| {
            matches!(
                matches.value_source(arg.get_id().as_str()),
                Some(ValueSource::CommandLine | ValueSource::EnvVariable)
            )
        })
        .map(|arg| arg.get_id().to_string())
        .collect()
}

/// The command line with the file's tokens put right after `serve`, less those for flags the
/// command line or environment already set. Keys are unique in a TOML table, so no flag is then
/// given twice, and clap's usual checks (`requires`, `conflicts_with`) see the merged whole.
pub fn merge(
    argv: &[OsString],
    serve_at: usize,
    file: Vec<FileArg>,
    given: &HashSet<String>,
) -> Vec<OsString> {
    let mut merged = argv[..=serve_at].to_vec();
    merged.extend(
        file.into_iter()
            .filter(|a| !given.contains(&a.id))
            .flat_map(|a| a.tokens),
    );
    merged.extend_from_slice(&argv[serve_at + 1..]);
    merged
}

/// The flag a file key names: a long flag of `serve`, not one kept for the command line.
fn file_flag<'a>(serve: &'a Command, key: &str) -> Option<&'a Arg> {
    if NOT_IN_FILE.contains(&key) {
        return None;
    }
    serve.get_arguments().find(|a| a.get_long() == Some(key))
}

/// How a key's TOML value failed, before the file and key are known.
enum ValueError {
    Type {
        expected: String,
        found: &'static str,
    },
    Invalid {
        value: String,
        reason: String,
    },
}

impl ValueError {
    fn into_error(self, path: &str, key: &str) -> ConfigFileError {
        match self {
            ValueError::Type { expected, found } => ConfigFileError::WrongType {
                path: path.to_owned(),
                key: key.to_owned(),
                expected,
                found,
            },
            ValueError::Invalid { value, reason } => ConfigFileError::InvalidValue {
                path: path.to_owned(),
                key: key.to_owned(),
                value,
                reason,
            },
        }
    }
}

fn tokens_for(arg: &Arg, value: &Value) -> Result<Vec<OsString>, ValueError> {
    let long = arg.get_long().unwrap_or_default();
    let flag = |v: &str| OsString::from(format!("--{long}={v}"));
    match arg.get_action() {
        // A switch: true is the flag given, false the flag absent.
        ArgAction::SetTrue => match value {
            Value::Boolean(true) => Ok(vec![OsString::from(format!("--{long}"))]),
            Value::Boolean(false) => Ok(Vec::new()),
            other => Err(ValueError::Type {
                expected: "true or false".to_owned(),
                found: kind(other),
            }),
        },
        ArgAction::Append => {
            // One value is a list of one: `listen = "0.0.0.0:80"` reads as it would on the command line.
            let items = match value {
                Value::Array(items) => items.as_slice(),
                one => std::slice::from_ref(one),
            };
            items
                .iter()
                .map(|item| {
                    let text = scalar(arg, item, "a list of")?;
                    check_value(arg, &text)?;
                    Ok(flag(&text))
                })
                .collect()
        }
        _ => {
            let text = scalar(arg, value, "")?;
            check_value(arg, &text)?;
            Ok(vec![flag(&text)])
        }
    }
}

/// A string, integer or float as the text the flag would get on the command line; which of
/// them is right is the flag parser's call (`max-body = 1048576` and `max-body = "1MiB"` both).
fn scalar(arg: &Arg, value: &Value, list_of: &str) -> Result<String, ValueError> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Integer(n) => Ok(n.to_string()),
        Value::Float(x) => Ok(x.to_string()),
        other => {
            let name = arg
                .get_value_names()
                .and_then(|names| names.first())
                .map_or("VALUE".to_owned(), |n| n.to_string());
            let sep = if list_of.is_empty() { "" } else { " " };
            Err(ValueError::Type {
                expected: format!("{list_of}{sep}{name} (a string or number)"),
                found: kind(other),
            })
        }
    }
}

/// Runs `text` through `arg`'s own value parser, in a one-flag command so that the flag's
/// `requires` and `conflicts_with` (checked later on the merged command line) do not interfere.
fn check_value(arg: &Arg, text: &str) -> Result<(), ValueError> {
    let mut probe = Arg::new("value")
        .long("value")
        .action(ArgAction::Append)
        .value_parser(arg.get_value_parser().clone());
    if let Some(delimiter) = arg.get_value_delimiter() {
        probe = probe.value_delimiter(delimiter);
    }
    Command::new("percore")
        .no_binary_name(true)
        .arg(probe)
        .try_get_matches_from([format!("--value={text}")])
        .map(drop)
        .map_err(|e| ValueError::Invalid {
            value: text.to_owned(),
            reason: parser_reason(&e),
        })
}

/// The value parser's own message when there is one (clap's adds the probe's flag name).
fn parser_reason(err: &clap::Error) -> String {
    if let Some(source) = std::error::Error::source(err) {
        return source.to_string();
    }
    let rendered = err.to_string();
    rendered
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("rejected")
        .trim_start_matches("error: ")
        .to_owned()
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Boolean(_) => "a boolean",
        Value::Datetime(_) => "a date-time",
        Value::Array(_) => "a list",
        Value::Table(_) => "a table",
    }
}

/// 1-based line and column (in characters) of a byte offset; an offset off a character
/// boundary (not expected from toml) counts from the end rather than panicking.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// The file key nearest to a misspelt one, if it is near enough to be what was meant.
fn suggest(serve: &Command, key: &str) -> Option<String> {
    serve
        .get_arguments()
        .filter_map(Arg::get_long)
        .filter(|long| !NOT_IN_FILE.contains(long))
        .map(|long| (edit_distance(key, long), long))
        .filter(|(d, long)| *d <= 2.max(long.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, long)| long.to_owned())
}

/// Levenshtein distance with adjacent swaps counted once (`hedaer` for `header`).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut rows = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in rows.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in rows[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (rows[i - 1][j] + 1)
                .min(rows[i][j - 1] + 1)
                .min(rows[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = d;
        }
    }
    rows[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command as CliCommand, ServeArgs};
    use clap::{CommandFactory, Parser};

    fn serve() -> Command {
        Cli::command()
            .find_subcommand("serve")
            .expect("percore has a serve subcommand")
            .clone()
    }

    fn args(text: &str) -> Result<Vec<FileArg>, ConfigFileError> {
        to_args(Path::new("/etc/percore.toml"), text, &serve())
    }

    fn tokens(text: &str) -> Vec<String> {
        args(text)
            .expect("a valid file")
            .into_iter()
            .flat_map(|a| a.tokens)
            .map(|t| t.into_string().expect("UTF-8 token"))
            .collect()
    }

    fn err(text: &str) -> String {
        args(text).expect_err("an invalid file").to_string()
    }

    /// The file's tokens and then `cli` after `percore serve`, parsed as main does.
    fn parse(text: &str, cli: &[&str], given_env: &[&str]) -> ServeArgs {
        let argv: Vec<OsString> = ["percore", "serve"]
            .iter()
            .chain(cli)
            .map(OsString::from)
            .collect();
        let serve = serve();
        let matches = serve
            .clone()
            .ignore_errors(true)
            .no_binary_name(true)
            .try_get_matches_from(&argv[2..])
            .expect("the command line parses");
        let mut given = given_elsewhere(&serve, &matches);
        given.extend(given_env.iter().map(|s| s.to_string()));
        let merged = merge(&argv, 1, args(text).expect("a valid file"), &given);
        match Cli::try_parse_from(merged)
            .expect("the merged line parses")
            .command
        {
            CliCommand::Serve(serve) => serve,
        }
    }

    #[test]
    fn strings_integers_and_floats_become_flag_values() {
        assert_eq!(
            tokens("max-body = \"8MiB\"\nshards = 4\nheader-timeout = 2.5\n"),
            ["--max-body=8MiB", "--shards=4", "--header-timeout=2.5"]
        );
    }

    #[test]
    fn values_starting_with_a_dash_stay_values() {
        assert_eq!(tokens("access-log = \"-\""), ["--access-log=-"]);
    }

    #[test]
    fn switches_are_given_when_true_and_absent_when_false() {
        assert_eq!(tokens("no-h2 = true\nlisting = false"), ["--no-h2"]);
    }

    #[test]
    fn repeatable_flags_take_a_list_or_one_value() {
        assert_eq!(
            tokens("listen = [\"0.0.0.0:80\", \"[::]:80\"]\nmount = \"/a=/srv/a\""),
            [
                "--listen=0.0.0.0:80",
                "--listen=[::]:80",
                "--mount=/a=/srv/a"
            ]
        );
        assert_eq!(tokens("tls-listen = []"), Vec::<String>::new());
    }

    #[test]
    fn file_order_is_kept() {
        assert_eq!(
            tokens("shards = 1\nbacklog = 2\ngrace = 3"),
            ["--shards=1", "--backlog=2", "--grace=3"]
        );
    }

    #[test]
    fn unknown_key_is_named_with_a_suggestion() {
        assert_eq!(
            err("hedaer-timeout = 3"),
            "/etc/percore.toml: unknown field \"hedaer-timeout\" (did you mean \"header-timeout\"?)"
        );
        assert_eq!(
            err("frobnicate = 1"),
            "/etc/percore.toml: unknown field \"frobnicate\""
        );
    }

    #[test]
    fn command_line_only_flags_are_refused() {
        assert!(err("config = \"x.toml\"").contains(": config: only allowed on the command line"));
        assert!(err("check = true").contains(": check: only allowed"));
        assert!(err("help = true").contains(": help: only allowed"));
    }

    #[test]
    fn wrong_types_name_the_key_and_both_types() {
        assert_eq!(
            err("header-timeout = true"),
            "/etc/percore.toml: header-timeout: expected SECS (a string or number), got a boolean"
        );
        assert_eq!(
            err("no-h2 = \"yes\""),
            "/etc/percore.toml: no-h2: expected true or false, got a string"
        );
        assert!(
            err("root = [\"a\"]").contains("root: expected DIR (a string or number), got a list")
        );
        assert!(err("listen = [[\"a\"]]").contains("listen: expected a list of ADDR"));
        assert!(err("root = 1979-05-27").contains("got a date-time"));
    }

    #[test]
    fn tables_are_refused_naming_the_key() {
        assert!(err("[tls]\ncert = \"x\"").contains(": tls: tables are not read"));
        assert!(err("[[mount]]\nprefix = \"/\"").contains(": mount: tables are not read"));
        assert!(err("cert = { path = \"x\" }").contains(": cert: tables are not read"));
    }

    #[test]
    fn values_go_through_the_flag_parser() {
        assert_eq!(
            err("max-body = \"8 MB\""),
            "/etc/percore.toml: max-body: invalid value \"8 MB\": expected a size such as 8192, 8KiB or 1MiB"
        );
        assert!(err("listen = [\"0.0.0.0:80\", \"nowhere\"]")
            .contains("listen: invalid value \"nowhere\": expected IP:PORT"));
        assert!(err("max-conns = -1").contains("max-conns: invalid value \"-1\""));
        assert!(err("max-conns = 1.5").contains("max-conns: invalid value \"1.5\""));
    }

    #[test]
    fn syntax_errors_give_line_and_column_on_one_line() {
        let e = err("shards = 1\nmax-body = 8 MiB\n");
        assert!(e.starts_with("/etc/percore.toml:2:"), "{e}");
        assert!(!e.contains('\n'), "{e}");
        let e = err("shards = 1\nshards = 2\n");
        assert!(e.starts_with("/etc/percore.toml:2:"), "{e}");
    }

    #[test]
    fn unreadable_file_names_it_without_the_os_error_number() {
        let e = read(Path::new("/nonexistent/percore.toml")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--config /nonexistent/percore.toml: No such file or directory"
        );
    }

    #[test]
    fn the_file_alone_sets_flags() {
        let args = parse(
            "shards = 3\nno-h2 = true\nmount = [\"/a=/srv/a\"]\nmax-body = \"8MiB\"",
            &[],
            &[],
        );
        assert_eq!(args.shards, 3);
        assert!(args.no_h2);
        assert_eq!(args.mounts, ["/a=/srv/a"]);
        assert_eq!(args.max_body, 8 << 20);
    }

    #[test]
    fn command_line_wins_over_the_file() {
        let args = parse(
            "shards = 3\nmax-body = \"8MiB\"",
            &["--shards", "1", "--max-body=2KiB"],
            &[],
        );
        assert_eq!(args.shards, 1);
        assert_eq!(args.max_body, 2048);
    }

    #[test]
    fn a_repeatable_flag_on_the_command_line_replaces_the_file_list() {
        let args = parse(
            "listen = [\"127.0.0.1:80\", \"127.0.0.1:81\"]\nmount = [\"/a=/srv/a\"]",
            &["--listen", "9000"],
            &[],
        );
        assert_eq!(args.listen.len(), 1);
        assert_eq!(args.listen[0].port(), 9000);
        assert_eq!(args.mounts, ["/a=/srv/a"]);
    }

    #[test]
    fn requires_is_checked_on_the_merged_whole() {
        // --cert requires --key: one from each source is fine.
        let args = parse("key = \"/k.pem\"", &["--cert", "/c.pem"], &[]);
        assert_eq!(args.cert.as_deref(), Some(Path::new("/c.pem")));
        assert_eq!(args.key.as_deref(), Some(Path::new("/k.pem")));
    }

    #[test]
    fn an_environment_variable_wins_over_the_file() {
        // A variable of this test's own, so no other test sees it.
        const VAR: &str = "PERCORE_CONFIG_FILE_TEST_LEVEL";
        std::env::set_var(VAR, "from-env");
        let cmd = Command::new("t")
            .no_binary_name(true)
            .arg(Arg::new("level").long("level").env(VAR))
            .arg(Arg::new("other").long("other"));
        let matches = cmd.clone().try_get_matches_from(["--other=x"]).unwrap();
        let given = given_elsewhere(&cmd, &matches);
        assert!(
            given.contains("level") && given.contains("other"),
            "{given:?}"
        );
        let file = to_args(Path::new("f.toml"), "level = \"from-file\"", &cmd).unwrap();
        let argv: Vec<OsString> = ["t", "run"].iter().map(OsString::from).collect();
        assert_eq!(merge(&argv, 1, file, &given), argv);
        std::env::remove_var(VAR);
    }

    #[test]
    fn the_file_comes_right_after_serve() {
        let argv: Vec<OsString> = ["percore", "serve", "--check"]
            .iter()
            .map(OsString::from)
            .collect();
        let file = vec![FileArg {
            id: "shards".into(),
            tokens: vec!["--shards=2".into()],
        }];
        assert_eq!(
            merge(&argv, 1, file, &HashSet::new()),
            ["percore", "serve", "--shards=2", "--check"]
        );
    }

    #[test]
    fn edit_distance_counts_a_swap_once() {
        assert_eq!(edit_distance("hedaer", "header"), 1);
        assert_eq!(edit_distance("listen", "listen"), 0);
        assert_eq!(edit_distance("", "abc"), 3);
    }

    #[test]
    fn every_serve_flag_with_a_long_name_is_a_key_except_the_command_line_ones() {
        let serve = serve();
        for arg in serve.get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            assert_eq!(
                file_flag(&serve, long).is_some(),
                !NOT_IN_FILE.contains(&long),
                "{long}"
            );
        }
    }

    #[test]
    fn parse_with_config_file_reads_the_file_after_serve() {
        let dir = std::env::temp_dir().join(format!("percore-config-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("percore.toml");
        std::fs::write(&file, "shards = 5\nbacklog = 7\n").unwrap();
        let argv = [
            "percore",
            "serve",
            "--config",
            file.to_str().unwrap(),
            "--backlog",
            "9",
        ]
        .iter()
        .map(OsString::from)
        .collect();
        let cli = Cli::parse_with_config_file(argv).unwrap();
        let CliCommand::Serve(args) = cli.command;
        if std::env::var_os("PERCORE_SHARDS").is_none() {
            assert_eq!(args.shards, 5);
        }
        assert_eq!(args.backlog, 9);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
