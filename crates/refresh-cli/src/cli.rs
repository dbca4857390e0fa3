//! The command line.

use crate::start::StartRequest;
use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "refresh",
    version,
    about = "Start, follow, list, stop, compare and finish data refresh executions.",
    long_about = "Start, follow, list, stop, compare and finish data refresh executions.\n\n\
        AWS region, credentials and endpoint come from the usual AWS environment \
        (for LocalStack: `. .local/env`). The state machines come from \
        DATA_REFRESH_STATE_MACHINE_ARN / FILTERED_INDEX_STATE_MACHINE_ARN when set \
        (`. .local/stack.env`), else from the outputs of --stack.\n\n\
        Exit codes: 0 success, 2 usage, 3 refused (concurrency, drop or search guard, \
        invalid input; `finish` of a run that did not end AliasesNotPromoted), \
        4 the refresh failed, 5 cannot reach AWS."
)]
pub struct Cli {
    /// One JSON object per line (per event for status/--follow), for scripts.
    #[arg(long, global = true)]
    pub json: bool,
    /// The CloudFormation stack whose outputs name the state machines.
    #[arg(
        long,
        global = true,
        env = "STACK_NAME",
        default_value = "data-refresh"
    )]
    pub stack: String,
    /// Seconds between polls while following.
    #[arg(long, global = true, value_name = "SECONDS", default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub interval: u64,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start a refresh of one or both media types.
    Start(StartArgs),
    /// Every stage of an execution, its ranges, the filtered index and the report.
    Status(StatusArgs),
    /// Recent executions of both machines.
    List(ListArgs),
    /// Stop an execution (and wait until its cleanup is done).
    Stop(StopArgs),
    /// The last refreshes of a media type: counts and durations side by side.
    History(HistoryArgs),
    /// Move the aliases of a run that ended AliasesNotPromoted (its table is promoted).
    Finish(FinishArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MediaChoice {
    Image,
    Audio,
    All,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MediaName {
    Image,
    Audio,
}

impl MediaName {
    pub fn as_str(self) -> &'static str {
        match self {
            MediaName::Image => "image",
            MediaName::Audio => "audio",
        }
    }
}

/// A text value that names its argument when it is not UTF-8 (clap's own check names none).
fn utf8_value() -> impl clap::builder::TypedValueParser<Value = String> {
    use clap::builder::TypedValueParser;
    clap::builder::OsStringValueParser::new()
        .try_map(|value| value.into_string().map_err(|_| "not valid UTF-8"))
}

#[derive(Debug, Args)]
pub struct StartArgs {
    /// Media type(s) to refresh; repeat or use `all` for both (one execution each).
    #[arg(long, required = true, value_enum, value_delimiter = ',')]
    pub media: Vec<MediaChoice>,
    /// staging or production (checked by the same rule as the validate_input Lambda).
    #[arg(long, default_value = "staging", value_parser = utf8_value())]
    pub environment: String,
    /// Index suffix (default: the execution's start time, YYYYMMDDhhmmss).
    #[arg(long, value_parser = utf8_value())]
    pub suffix: Option<String>,
    /// Reuse the existing temp table: start at the tag filter and reindex.
    #[arg(long)]
    pub skip_copy: bool,
    /// Wait while another run holds the environment instead of being refused.
    #[arg(long, conflicts_with = "allow_concurrent")]
    pub wait_if_busy: bool,
    /// Skip the concurrency check.
    #[arg(long)]
    pub allow_concurrent: bool,
    /// Rows to copy outside production (ignored in production).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub row_limit: Option<u64>,
    /// Largest allowed drop of the document count, in percent (default: the deployment's).
    #[arg(
        long,
        value_name = "P",
        conflicts_with = "override_drop",
        allow_negative_numbers = true
    )]
    pub max_drop_pct: Option<f64>,
    /// Promote even when the count drops past the guard.
    #[arg(long, visible_alias = "override-record-drop")]
    pub override_drop: bool,
    /// Promote even when a search guard query finds too few documents in the new index.
    #[arg(long)]
    pub override_search_guard: bool,
    /// How the filtered index is built: `dual_write` (the default: the workers write it in the
    /// reindex's one pass, verified before promotion) or `reindex` (a throttled Elasticsearch
    /// `_reindex` after the main reindex).
    #[arg(long, value_name = "MODE", value_parser = utf8_value())]
    pub filtered_index: Option<String>,
    /// Follow the execution(s) to the end; the exit code is then the worst outcome.
    #[arg(long)]
    pub follow: bool,
    /// With --follow: stop the execution(s) still running after this many seconds (exit 4).
    #[arg(long, value_name = "SECONDS", requires = "follow")]
    pub timeout: Option<u64>,
    /// Check the input and print it, without starting anything.
    #[arg(long)]
    pub dry_run: bool,
}

impl StartArgs {
    /// Each media type once, in a fixed order (image first), whatever the flags' order.
    pub fn media_types(&self) -> Vec<&'static str> {
        let all = self.media.contains(&MediaChoice::All);
        let mut out = Vec::new();
        if all || self.media.contains(&MediaChoice::Image) {
            out.push("image");
        }
        if all || self.media.contains(&MediaChoice::Audio) {
            out.push("audio");
        }
        out
    }

    pub fn request(&self) -> StartRequest {
        StartRequest {
            environment: self.environment.clone(),
            suffix: self.suffix.clone(),
            skip_copy: self.skip_copy,
            wait_if_busy: self.wait_if_busy,
            allow_concurrent: self.allow_concurrent,
            row_limit: self.row_limit,
            max_drop_pct: self.max_drop_pct,
            override_drop: self.override_drop,
            override_search_guard: self.override_search_guard,
            filtered_index: self.filtered_index.clone(),
        }
    }
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Execution ARN or name (default: the running execution, else the latest refresh).
    pub execution: Option<String>,
    /// Keep following until the execution ends; the exit code is then its outcome.
    #[arg(long)]
    pub follow: bool,
    /// Show a recorded run (`{"describe", "history"}` JSON) instead of asking AWS; with
    /// --follow it unfolds a few events per --interval.
    #[arg(long, value_name = "FILE", hide = true, conflicts_with = "execution")]
    pub replay: Option<String>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only executions of this media type.
    #[arg(long, value_enum)]
    pub media: Option<MediaName>,
    /// How many executions to show.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub limit: u16,
}

#[derive(Debug, Args)]
pub struct StopArgs {
    /// Execution ARN or name.
    pub execution: String,
    /// Wait until the execution is aborted, its workers are gone and the cleanup rule
    /// reported its temp table and unpromoted indices removed.
    #[arg(long)]
    pub wait: bool,
    /// With --wait: give up after this many seconds (exit 4).
    #[arg(long, value_name = "SECONDS", default_value_t = 900, requires = "wait")]
    pub timeout: u64,
}

#[derive(Debug, Args)]
pub struct FinishArgs {
    /// Execution ARN or name of the run that ended AliasesNotPromoted.
    pub execution: String,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// image or audio.
    #[arg(value_enum)]
    pub media: MediaName,
    /// Only runs in this environment.
    #[arg(long)]
    pub environment: Option<String>,
    /// How many refreshes to show.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=200))]
    pub limit: u16,
}

/// A clap error as one line (`error: invalid value 'x' for '--media <MEDIA>' [possible
/// values: image, audio, all]`), without the usage block.
pub fn one_line_usage_error(err: &clap::Error) -> String {
    let rendered = err.render().to_string();
    let mut lines = rendered.lines().map(str::trim);
    let mut text = lines.next().unwrap_or("error: bad arguments").to_string();
    // The first paragraph goes on: the missing arguments, the possible values.
    for line in lines.by_ref() {
        if line.is_empty() {
            break;
        }
        text.push(' ');
        text.push_str(line);
    }
    if let Some(hint) = lines.find(|l| l.starts_with("[possible values") || l.starts_with("tip:")) {
        text.push(' ');
        text.push_str(hint);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("refresh").chain(args.iter().copied()))
    }

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn media_all_and_repeats_mean_each_once() {
        let Command::Start(args) = parse(&["start", "--media", "audio", "--media", "image"])
            .expect("valid")
            .command
        else {
            panic!("not start")
        };
        assert_eq!(args.media_types(), ["image", "audio"]);
        let Command::Start(args) = parse(&["start", "--media", "all,image"])
            .expect("valid")
            .command
        else {
            panic!("not start")
        };
        assert_eq!(args.media_types(), ["image", "audio"]);
    }

    /// Each usage error is one line that names the argument.
    #[test]
    fn usage_errors_are_one_line_naming_the_argument() {
        let cases: [(&[&str], &str); 10] = [
            (&["start", "--media", "video"], "--media"),
            (&["start"], "--media"),
            (
                &[
                    "start",
                    "--media",
                    "image",
                    "--wait-if-busy",
                    "--allow-concurrent",
                ],
                "--allow-concurrent",
            ),
            (
                &[
                    "start",
                    "--media",
                    "image",
                    "--max-drop-pct",
                    "5",
                    "--override-drop",
                ],
                "--override-drop",
            ),
            (
                &["start", "--media", "image", "--row-limit", "ten"],
                "--row-limit",
            ),
            (&["start", "--media", "image", "--timeout", "5"], "--follow"),
            (&["list", "--limit", "0"], "--limit"),
            (&["history", "video"], "MEDIA"),
            (&["stop"], "EXECUTION"),
            (&["finish"], "EXECUTION"),
        ];
        for (args, named) in cases {
            let err = parse(args).expect_err("usage error");
            let line = one_line_usage_error(&err);
            assert!(!line.contains('\n'), "{args:?}: {line}");
            assert!(line.contains(named), "{args:?}: {line}");
            assert_eq!(err.exit_code(), 2, "{args:?}");
        }
    }

    #[test]
    fn stack_comes_from_the_environment_or_the_default() {
        let cli = parse(&["list"]).expect("valid");
        let expected = std::env::var("STACK_NAME").unwrap_or_else(|_| "data-refresh".into());
        assert_eq!(cli.stack, expected);
        let cli = parse(&["list", "--stack", "other"]).expect("valid");
        assert_eq!(cli.stack, "other");
    }
}
