//! `weir definition validate FILE...`, `weir definition show FILE|NAME --format ...`, and in
//! Redis `weir definition register FILE...` and `weir definition list`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, Context as _};
use clap::{Args, Subcommand, ValueEnum};
use weir::definition::{compile, parse_definition, to_mermaid, DefinitionError, Workflow};
use weir::Engine;

use weir::api::EngineError;
use weir::registry::RegistryError;

use super::exit::one_line;
use super::printer::out;
use super::remote::{client, engine_error, print_json};
use super::Global;

/// `weir definition ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum DefinitionCommand {
    /// Check definition files (YAML or JSON); prints NAME@VERSION for each valid one.
    Validate(ValidateArgs),
    /// Print a definition (a file, or a name registered in Redis) as YAML, JSON or a
    /// Mermaid flowchart.
    Show(ShowArgs),
    /// Check definition files, then register them in Redis; prints NAME@VERSION for each.
    Register(ValidateArgs),
    /// List the definitions registered in Redis.
    List(ListArgs),
}

/// `weir definition list`.
#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `weir definition validate`.
#[derive(Debug, Args)]
pub(crate) struct ValidateArgs {
    /// Definition files.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

/// `weir definition show`.
#[derive(Debug, Args)]
pub(crate) struct ShowArgs {
    /// A definition file, or the name of a definition registered in Redis.
    #[arg(value_name = "FILE|NAME")]
    pub file: PathBuf,
    /// The version of a registered definition; the latest when not given.
    #[arg(long, value_name = "V")]
    pub version: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Yaml)]
    pub format: Format,
}

/// How `show` prints a definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// The definition as YAML.
    Yaml,
    /// The definition as JSON.
    Json,
    /// A Mermaid flowchart, to paste into Markdown.
    Mermaid,
}

/// Runs a `weir definition` command.
pub(crate) async fn run(global: &Global, cmd: DefinitionCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        DefinitionCommand::Validate(args) => validate(&args.files),
        DefinitionCommand::Show(args) => {
            if args.file.is_file() {
                if args.version.is_some() {
                    return Err(anyhow!(
                        "--version is for a registered definition, not a file ({})",
                        args.file.display()
                    ));
                }
                let wf = load(&args.file)?;
                show(&args.file.display().to_string(), &wf, args.format)
            } else {
                let name = args.file.to_string_lossy().into_owned();
                let client = client(global).await?;
                let wf = client
                    .get_definition(&name, args.version.as_deref())
                    .await
                    .map_err(|e| not_a_file_either(global, &name, e))?;
                show(&wf.key(), &wf, args.format)
            }
        }
        DefinitionCommand::Register(args) => register(global, &args.files).await,
        DefinitionCommand::List(args) => list(global, args.json).await,
    }
}

/// An unknown name that is not a file either: say both.
fn not_a_file_either(global: &Global, name: &str, e: EngineError) -> anyhow::Error {
    match e {
        EngineError::Registry(RegistryError::Unknown { .. }) => anyhow!(
            "{name:?} is neither a file nor a definition registered in namespace {:?}: check              the path, or `weir definition list`",
            global.namespace
        ),
        other => engine_error(global, other),
    }
}

/// Checks every file, then registers them; an invalid file registers nothing.
async fn register(global: &Global, files: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let mut loaded = Vec::new();
    let mut problems = Vec::new();
    for file in files {
        match load(file) {
            Ok(wf) => loaded.push((file, wf)),
            Err(e) => problems.push(one_line(&format!("{e:#}"))),
        }
    }
    if !problems.is_empty() {
        return Err(anyhow!(
            "{}; nothing registered: fix the file(s) and run it again",
            problems.join("; ")
        ));
    }
    let client = client(global).await?;
    for (file, wf) in loaded {
        let key = wf.key();
        match client.register_definition(wf.definition.clone()).await {
            Ok(_) => out(&key),
            Err(EngineError::Registry(RegistryError::Conflict { .. })) => {
                return Err(anyhow!(
                    "{}: {key} is registered already with other content; versions are \
                     immutable: give it a new version",
                    file.display()
                ))
            }
            Err(e) => {
                return Err(engine_error(global, e).context(format!("{}", file.display())));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One registered definition, for `list --json`.
#[derive(Debug, serde::Serialize)]
struct Listed<'a> {
    name: &'a str,
    version: &'a str,
    description: Option<&'a str>,
    steps: usize,
}

async fn list(global: &Global, json: bool) -> anyhow::Result<ExitCode> {
    let client = client(global).await?;
    let mut defs = client
        .list_definitions()
        .await
        .map_err(|e| engine_error(global, e))?;
    defs.sort_by(|a, b| a.name.cmp(&b.name).then(a.semver.cmp(&b.semver)));
    let listed: Vec<Listed> = defs
        .iter()
        .map(|wf| Listed {
            name: &wf.name,
            version: &wf.version,
            description: wf.definition.description.as_deref(),
            steps: wf.steps.len(),
        })
        .collect();
    if json {
        print_json(&listed)?;
    } else if listed.is_empty() {
        out("no definitions registered: add some with `weir definition register FILE`");
    } else {
        for l in &listed {
            out(&format!(
                "{}@{}  {}",
                l.name,
                l.version,
                l.description.unwrap_or("")
            ));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads, parses and checks a definition file. The error is one line naming the file and
/// every problem (step, edge or field at fault).
pub(crate) fn load(path: &Path) -> anyhow::Result<Workflow> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow!("{}: cannot read the file: {e}", path.display()))?;
    load_text(&path.display().to_string(), &text)
}

/// Parses and checks definition text; `origin` (a file name) starts any error.
pub(crate) fn load_text(origin: &str, text: &str) -> anyhow::Result<Workflow> {
    let def = parse_definition(text).map_err(|e| match e {
        // The parser's message is a first line that says it all, then a source snippet
        // (for terminals); the first line is kept.
        DefinitionError::Parse(m) => {
            let first = m.lines().next().unwrap_or_default();
            let first = first.strip_prefix("error: ").unwrap_or(first);
            anyhow!("{origin}: cannot parse the definition: {}", one_line(first))
        }
        other => anyhow!("{origin}: {}", one_line(&other.to_string())),
    })?;
    compile(def).map_err(|e| anyhow!("{origin}: {}", one_line(&e.to_string())))
}

fn validate(files: &[PathBuf]) -> anyhow::Result<ExitCode> {
    if let [one] = files {
        out(&load(one)?.key());
        return Ok(ExitCode::SUCCESS);
    }
    let mut invalid = 0usize;
    for file in files {
        match load(file) {
            Ok(wf) => out(&wf.key()),
            Err(e) => {
                invalid += 1;
                eprintln!("error: {e:#}");
            }
        }
    }
    if invalid > 0 {
        return Err(anyhow!(
            "{invalid} of {} definition file(s) invalid: fix the problems listed above",
            files.len()
        ));
    }
    Ok(ExitCode::SUCCESS)
}

fn show(origin: &str, wf: &Workflow, format: Format) -> anyhow::Result<ExitCode> {
    let text = match format {
        Format::Yaml => serde_saphyr::to_string(&wf.definition)
            .with_context(|| format!("{origin}: cannot write it as YAML"))?,
        Format::Json => serde_json::to_string_pretty(&wf.definition)
            .with_context(|| format!("{origin}: cannot write it as JSON"))?,
        Format::Mermaid => to_mermaid(wf),
    };
    out(text.trim_end());
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_one_line_and_name_the_file_and_the_place() {
        let e = load_text(
            "f.yaml",
            "name: x\nversion: \"1.0.0\"\nsteps:\n  a: { type: machine, handler: noop }\nedges:\n  - { from: a, to: b }\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("f.yaml: "), "{e}");
        assert!(
            e.contains("edge 0 (a -> b)") && e.contains("unknown step \"b\""),
            "{e}"
        );
        assert!(!e.contains('\n'));

        let e = load_text(
            "g.yaml",
            "name: x\nversion: \"1.0.0\"\nsteps:\n  a: {type: machin}\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with(
                "g.yaml: cannot parse the definition: line 4 column 7: unknown variant `machin`"
            ),
            "{e}"
        );
        assert!(!e.contains('\n'), "{e}");
    }
}
