//! `weir definition validate FILE...` and `weir definition show FILE --format ...`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, Context as _};
use clap::{Args, Subcommand, ValueEnum};
use weir::definition::{compile, parse_definition, to_mermaid, DefinitionError, Workflow};

use super::exit::one_line;
use super::printer::out;
use super::Global;

/// `weir definition ...`.
#[derive(Debug, Subcommand)]
pub enum DefinitionCommand {
    /// Check definition files (YAML or JSON); prints NAME@VERSION for each valid one.
    Validate(ValidateArgs),
    /// Print a definition file as YAML, JSON or a Mermaid flowchart.
    Show(ShowArgs),
}

/// `weir definition validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Definition files.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

/// `weir definition show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// A definition file.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Yaml)]
    pub format: Format,
}

/// How `show` prints a definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// The definition as YAML.
    Yaml,
    /// The definition as JSON.
    Json,
    /// A Mermaid flowchart, to paste into Markdown.
    Mermaid,
}

/// Runs a `weir definition` command.
pub async fn run(_global: &Global, cmd: DefinitionCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        DefinitionCommand::Validate(args) => validate(&args.files),
        DefinitionCommand::Show(args) => show(&args.file, args.format),
    }
}

/// Reads, parses and checks a definition file. The error is one line naming the file and
/// every problem (step, edge or field at fault).
pub fn load(path: &Path) -> anyhow::Result<Workflow> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow!("{}: cannot read the file: {e}", path.display()))?;
    load_text(&path.display().to_string(), &text)
}

/// Parses and checks definition text; `origin` (a file name) starts any error.
pub fn load_text(origin: &str, text: &str) -> anyhow::Result<Workflow> {
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

fn show(file: &Path, format: Format) -> anyhow::Result<ExitCode> {
    let wf = load(file)?;
    let text = match format {
        Format::Yaml => serde_saphyr::to_string(&wf.definition)
            .with_context(|| format!("{}: cannot write it as YAML", file.display()))?,
        Format::Json => serde_json::to_string_pretty(&wf.definition)
            .with_context(|| format!("{}: cannot write it as JSON", file.display()))?,
        Format::Mermaid => to_mermaid(&wf),
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
