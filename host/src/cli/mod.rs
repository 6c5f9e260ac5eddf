//! The `aimass` command line. `up` runs a host in this process; every other command is a thin
//! HTTP client of a running host (`--url`, default `http://127.0.0.1:8080`), authenticated with
//! `--token`/`AIMASS_TOKEN` or, failing those, the admin token file `up` wrote into the data dir.

mod client;
mod data;
mod models;
mod pipelines;
mod up;

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "aimass",
    version,
    about = "WebAssembly plugin host for ML data pipelines"
)]
pub struct Cli {
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Run the host: API, plugin runtime and bundled plugins.
    Up(up::UpArgs),
    /// Manage plugins on a running host.
    Plugin {
        #[command(subcommand)]
        cmd: PluginCmd,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Run a collector, cleaner or transform on a file (or stdin) and print the result.
    Invoke {
        #[command(flatten)]
        args: InvokeArgs,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Bind plugins to object prefixes: they run when objects land there.
    Hook {
        #[command(subcommand)]
        cmd: HookCmd,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Upload a file (or stdin) as object KEY; hooks watching its prefix fire.
    Put {
        key: String,
        file: Option<PathBuf>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Download object KEY (to stdout, or -o FILE).
    Get {
        key: String,
        #[arg(short, long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List objects under a prefix.
    Ls {
        prefix: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Inspect the warehouse's datasets.
    Dataset {
        #[command(subcommand)]
        cmd: DatasetCmd,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Train a model on a dataset: `--watch` shows progress until the job ends.
    Train {
        #[command(flatten)]
        args: TrainArgs,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// The model registry and inference.
    Model {
        #[command(subcommand)]
        cmd: ModelCmd,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Declarative pipelines: apply a file, run it (`--watch` for a live view per step).
    Pipeline {
        #[command(subcommand)]
        cmd: PipelineCmd,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Manage API tokens (admin).
    Token {
        #[command(subcommand)]
        cmd: TokenCmd,
        #[command(flatten)]
        client: ClientArgs,
    },
}

/// How to reach a running host.
#[derive(Args, Debug, Clone)]
pub struct ClientArgs {
    /// Base URL of the host.
    #[arg(
        long,
        env = "AIMASS_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub url: String,
    /// Bearer token; defaults to the admin token file in the data dir.
    #[arg(long, env = "AIMASS_TOKEN", global = true, hide_env_values = true)]
    pub token: Option<String>,
    /// Data dir of a local host, where `up` writes the generated admin token.
    #[arg(
        long,
        env = "AIMASS_DATA_DIR",
        default_value = "./aimass-data",
        global = true
    )]
    pub data_dir: PathBuf,
}

#[derive(Subcommand, Debug)]
pub enum PipelineCmd {
    /// Create or replace a pipeline from a TOML (or .json) file; named after the file unless
    /// --name.
    Apply {
        file: PathBuf,
        #[arg(long)]
        name: Option<String>,
    },
    /// List pipelines with their last run.
    #[command(alias = "ls")]
    List,
    /// A pipeline: spec, source file, next scheduled run.
    Show { name: String },
    /// Start a run; prints its id, or with --watch follows it step by step until it ends.
    Run {
        name: String,
        #[arg(long)]
        watch: bool,
    },
    /// Follow a run that is already going.
    Watch { run: String },
    /// A pipeline's runs, newest first.
    Runs { name: String },
    /// One run in full: steps, timings, outputs, metrics, logs, errors.
    Status { run: String },
    /// Cancel a queued or running run.
    Cancel { run: String },
    /// Delete a pipeline (its runs stay).
    #[command(alias = "rm")]
    Delete { name: String },
}

#[derive(Subcommand, Debug)]
pub enum PluginCmd {
    /// Upload a component as a new version of NAME (hot swap; no restart).
    Push(Box<PushArgs>),
    /// List plugins.
    Ls,
    /// Show a plugin's versions, limits and call statistics.
    Show { name: String },
    /// Remove a plugin.
    Rm { name: String },
}

/// `aimass plugin push`.
#[derive(Args, Debug)]
pub struct PushArgs {
    pub name: String,
    pub file: PathBuf,
    /// Deadline per call, in milliseconds.
    #[arg(long)]
    pub timeout_ms: Option<u64>,
    /// Total linear memory per instance, in MiB.
    #[arg(long)]
    pub memory_mb: Option<u64>,
    /// Largest output per call, in MiB.
    #[arg(long)]
    pub output_mb: Option<u64>,
    /// Instances that may run at once.
    #[arg(long)]
    pub concurrency: Option<u32>,
    /// Environment variable the plugin sees through WASI (repeatable).
    #[arg(long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Host the plugin may send HTTP requests to: `host`, `host:port` or `*.domain`
    /// (repeatable; collectors and HTTP functions only).
    #[arg(long = "allow-host", value_name = "HOST")]
    pub allow_hosts: Vec<String>,
    /// Model the plugin may call through the inference import, or `*` (repeatable).
    #[arg(long = "model", value_name = "NAME")]
    pub models: Vec<String>,
    /// Store prefix the plugin may read through the storage import, ending with `/`
    /// (repeatable).
    #[arg(long = "read-prefix", value_name = "PREFIX/")]
    pub read_prefixes: Vec<String>,
    /// HTTP functions: serve at /fn/NAME without a token.
    #[arg(long)]
    pub public: bool,
    /// Public HTTP functions: anonymous calls at once, in slots of their own (default half
    /// of --concurrency).
    #[arg(long)]
    pub public_concurrency: Option<u32>,
    /// Public HTTP functions: anonymous calls per second.
    #[arg(long)]
    pub public_rate: Option<u32>,
    /// Public HTTP functions: anonymous calls per quota window (a day unless set).
    #[arg(long)]
    pub public_quota: Option<u64>,
}

#[derive(Args, Debug)]
pub struct InvokeArgs {
    /// Plugin name.
    pub name: String,
    /// Input file (default: stdin).
    #[arg(long = "in")]
    pub input: Option<PathBuf>,
    /// Output file (default: stdout).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Plugin config entry, repeatable: --config keys=id --config how=any
    #[arg(long = "config", value_name = "KEY=VALUE")]
    pub config: Vec<String>,
    /// Content type of the input (default: from the file extension, else text/csv).
    #[arg(long)]
    pub content_type: Option<String>,
    /// Wanted output format (media type); default: the input's.
    #[arg(long)]
    pub accept: Option<String>,
}

/// `aimass hook add`: a hook's spec as flags.
#[derive(clap::Args, Debug)]
pub struct HookAdd {
    name: String,
    /// Plugin to run (collector, cleaner or transform).
    #[arg(long)]
    plugin: String,
    /// Key prefix to watch, e.g. raw/sales/ or datasets/sales-raw/.
    #[arg(long)]
    prefix: String,
    /// Only keys ending with this, e.g. .csv.
    #[arg(long)]
    suffix: Option<String>,
    /// Events that fire it: created, deleted (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "created")]
    events: Vec<String>,
    /// Dataset the output parts go to.
    #[arg(long)]
    output: String,
    /// Plugin config entry, repeatable: --config method=iqr
    #[arg(long = "config", value_name = "KEY=VALUE")]
    config: Vec<String>,
    /// Retries after the first failure before the dead letter (default 3).
    #[arg(long)]
    max_retries: Option<u32>,
    /// Deadline per call in ms (default: the plugin's).
    #[arg(long)]
    timeout_ms: Option<u64>,
    /// First retry delay in ms, doubled per attempt (default 500).
    #[arg(long)]
    backoff_ms: Option<u64>,
}

#[derive(Subcommand, Debug)]
pub enum HookCmd {
    /// Create or replace hook NAME.
    Add(HookAdd),
    /// List hooks with their counters.
    Ls,
    /// Status of a hook: processed, failed, retrying, dead-lettered, lag, last error, latency.
    Status { name: String },
    /// A hook's dead letters (event, error, attempts).
    DeadLetters { name: String },
    /// Remove a hook (its datasets stay).
    Rm { name: String },
    /// Pause a hook; events are kept.
    Pause { name: String },
    /// Resume a paused hook.
    Resume { name: String },
    /// Replay a hook's dead letters.
    Redrive { name: String },
}

#[derive(Subcommand, Debug)]
pub enum DatasetCmd {
    /// List datasets.
    Ls,
    /// Schema, rows, parts and lineage of a dataset.
    Show { name: String },
    /// Print rows.
    Rows {
        name: String,
        #[arg(long, default_value_t = 20)]
        limit: u64,
        #[arg(long, default_value_t = 0)]
        offset: u64,
        /// json, csv or ndjson.
        #[arg(long, default_value = "json")]
        format: String,
    },
    /// Add a CSV, NDJSON, Arrow or Parquet file as a part; hooks on the dataset fire.
    Add { name: String, file: PathBuf },
    /// Delete a dataset.
    Rm { name: String },
}

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// A JSON training request (the `POST /v1/train` body); the flags below override it.
    #[arg(long)]
    pub spec: Option<PathBuf>,
    /// Model name the new version goes to.
    #[arg(long)]
    pub model: Option<String>,
    /// Trainer plugin, e.g. logistic-regression.
    #[arg(long)]
    pub trainer: Option<String>,
    /// Dataset to train on.
    #[arg(long)]
    pub dataset: Option<String>,
    /// Label column.
    #[arg(long)]
    pub label: Option<String>,
    /// Feature columns (default: every numeric column but the label).
    #[arg(long, value_delimiter = ',')]
    pub features: Vec<String>,
    /// Hyperparameter values to search, repeatable: --param c=0.1,1,10
    #[arg(long = "param", value_name = "NAME=V1,V2")]
    pub params: Vec<String>,
    /// Random search with this many trials (default: grid search over every combination).
    #[arg(long)]
    pub trials: Option<usize>,
    /// Seed of the split (and of random search).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Fraction of rows for validation (default 0.2).
    #[arg(long)]
    pub validation: Option<f64>,
    /// Fraction of rows for the test metrics (default 0.2).
    #[arg(long)]
    pub test: Option<f64>,
    /// Selection metric (default auc for classifiers, rmse for regressors).
    #[arg(long)]
    pub metric: Option<String>,
    /// Transform plugin fitted on the train split and applied at serving, repeatable.
    #[arg(long = "transform")]
    pub transforms: Vec<String>,
    /// Alias to move when the gate passes (default production).
    #[arg(long)]
    pub alias: Option<String>,
    /// Gate rule, repeatable: --gate min_auc=0.98
    #[arg(long, value_name = "RULE=VALUE")]
    pub gate: Vec<String>,
    /// Follow the job with a progress bar until it ends.
    #[arg(long)]
    pub watch: bool,
}

#[derive(Subcommand, Debug)]
pub enum ModelCmd {
    /// List models with their latest version and aliases.
    Ls,
    /// Show a model: versions, metrics, aliases, signatures.
    Show { name: String },
    /// Upload an ONNX file as a new version.
    Push {
        name: String,
        file: PathBuf,
        /// Point this alias at the new version.
        #[arg(long)]
        alias: Option<String>,
    },
    /// Point ALIAS at VERSION.
    Alias {
        name: String,
        alias: String,
        version: u32,
    },
    /// Delete a version (refused while an alias points at it).
    Rm { name: String, version: u32 },
    /// Send an Open Inference Protocol request (JSON file or stdin) and print the answer.
    Infer {
        name: String,
        /// Version number or alias (default: production, else latest).
        #[arg(long)]
        version: Option<String>,
        file: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
pub enum TokenCmd {
    /// Create a token; the secret is printed once.
    Create {
        /// admin, invoker or reader.
        #[arg(long)]
        role: String,
        #[arg(long, default_value = "cli")]
        name: String,
    },
    /// List tokens (ids, names, roles).
    Ls,
    /// Revoke a token by id.
    Rm { id: String },
}

/// Entry point of the binary.
pub fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let rt = match crate::server::runtime_builder().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async move {
        match cli.cmd {
            Cmd::Up(args) => up::run(args).await,
            Cmd::Plugin { cmd, client } => client::plugin(cmd, &client).await,
            Cmd::Invoke { args, client } => client::invoke(args, &client).await,
            Cmd::Token { cmd, client } => client::token(cmd, &client).await,
            Cmd::Hook { cmd, client } => data::hook(cmd, &client).await,
            Cmd::Put { key, file, client } => data::put(key, file, &client).await,
            Cmd::Get { key, out, client } => data::get(key, out, &client).await,
            Cmd::Ls { prefix, client } => data::ls(prefix, &client).await,
            Cmd::Dataset { cmd, client } => data::dataset(cmd, &client).await,
            Cmd::Train { args, client } => models::train(args, &client).await,
            Cmd::Model { cmd, client } => models::model(cmd, &client).await,
            Cmd::Pipeline { cmd, client } => pipelines::pipeline(cmd, &client).await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
