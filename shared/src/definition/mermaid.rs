//! A workflow as a Mermaid flowchart, to paste into a Markdown page (`weir definition show
//! --format mermaid`).
//!
//! Shapes say what a step is: a machine step is a box (with its handler), a human step a
//! stadium (with who may complete it), a gateway a diamond, a timer a circle (with its wait).
//! A small `start` circle points at the initial step. Success edges are solid arrows;
//! failure and timeout edges are dotted and labelled `on failure` / `on timeout`; edge
//! labels carry conditions and `default`. Nodes are named `s0`, `s1`, ... in step order, so
//! no step name can clash with Mermaid's syntax or keywords (`end`); labels are quoted and
//! escaped.

use std::fmt::Write;

use super::workflow::{CompiledKind, TimerSpec, Workflow};
use crate::model::definition::duration;
use crate::model::EdgeOn;

/// Renders a workflow as a Mermaid `flowchart TD`, one statement per line.
pub fn to_mermaid(wf: &Workflow) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail; the results are ignored on purpose.
    let _ = writeln!(out, "flowchart TD");
    let _ = writeln!(out, "    %% {}", wf.key());
    let _ = writeln!(out, "    start((start))");
    for (i, step) in wf.steps.iter().enumerate() {
        let name = escape(&step.name);
        let node = match &step.kind {
            CompiledKind::Machine { handler, .. } => {
                format!("s{i}[\"{name}<br/><i>{}</i>\"]:::machine", escape(handler))
            }
            CompiledKind::Human {
                assignee,
                candidates,
                ..
            } => {
                let mut who: Vec<&str> = assignee.iter().map(String::as_str).collect();
                who.extend(candidates.iter().map(String::as_str));
                let who = if who.is_empty() {
                    "anyone".to_string()
                } else {
                    who.join(", ")
                };
                format!(
                    "s{i}([\"{name}<br/><i>human: {}</i>\"]):::human",
                    escape(&who)
                )
            }
            CompiledKind::Gateway => format!("s{i}{{\"{name}\"}}:::gateway"),
            CompiledKind::Timer(spec) => {
                let wait = match spec {
                    TimerSpec::After(d) => duration::format(d),
                    TimerSpec::At(t) => format!("until {t}"),
                    TimerSpec::Expr(c) => format!("until {}", c.source()),
                };
                format!("s{i}((\"{name}<br/><i>{}</i>\")):::timer", escape(&wait))
            }
            CompiledKind::Event {
                event, correlation, ..
            } => {
                let on = match correlation {
                    Some(c) => format!("{event} by {}", c.source()),
                    None => event.to_string(),
                };
                format!(
                    "s{i}>\"{name}<br/><i>message: {}</i>\"]:::event",
                    escape(&on)
                )
            }
        };
        let _ = writeln!(out, "    {node}");
    }
    let _ = writeln!(out, "    start --> s{}", wf.initial);
    for edge in &wf.edges {
        let mut label: Vec<String> = Vec::new();
        match edge.on {
            EdgeOn::Success => {}
            EdgeOn::Failure => label.push("on failure".into()),
            EdgeOn::Timeout => label.push("on timeout".into()),
        }
        if let Some(c) = &edge.condition {
            label.push(c.source().to_string());
        }
        if edge.default {
            label.push("default".into());
        }
        let arrow = match edge.on {
            EdgeOn::Success => "-->",
            EdgeOn::Failure | EdgeOn::Timeout => "-.->",
        };
        let text = if label.is_empty() {
            String::new()
        } else {
            format!("|\"{}\"|", escape(&label.join(": ")))
        };
        let _ = writeln!(out, "    s{} {arrow}{text} s{}", edge.from, edge.to);
    }
    let _ = writeln!(out, "    classDef machine fill:#e8f0fe,stroke:#4a6fa5");
    let _ = writeln!(out, "    classDef human fill:#fff4e0,stroke:#c98a1b");
    let _ = writeln!(out, "    classDef gateway fill:#f3e8fd,stroke:#7b4fa5");
    let _ = writeln!(out, "    classDef timer fill:#e6f6ea,stroke:#3b8a4f");
    let _ = write!(out, "    classDef event fill:#fde8ec,stroke:#a54f62");
    out.push('\n');
    out
}

/// Escapes text for a quoted Mermaid label: quotes, angle brackets, `&` and `#` as entity
/// codes, line breaks as spaces.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => out.push_str("#quot;"),
            '<' => out.push_str("#lt;"),
            '>' => out.push_str("#gt;"),
            '&' => out.push_str("#amp;"),
            '#' => out.push_str("#35;"),
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::definition::{compile, parse_definition};

    const FLOW: &str = r#"
name: expense
version: "1.2.0"
steps:
  submit: { type: machine, handler: set, config: { a: 1 }, timeout: 5s }
  approve: { type: human, assignee: boss, candidates: [deputy], due: 1h }
  route: { type: gateway }
  end: { type: machine, handler: noop }
  wait: { type: timer, duration: 2s }
  anyone: { type: human }
  compensate: { type: machine, handler: log }
edges:
  - { from: submit, to: approve }
  - { from: submit, to: compensate, on: failure }
  - { from: approve, to: route }
  - { from: approve, to: anyone, on: timeout }
  - { from: route, to: end, condition: 'context.amount < 100 && context.note != "x"' }
  - { from: route, to: wait, default: true }
  - { from: wait, to: end }
  - { from: anyone, to: end }
"#;

    fn workflow() -> Workflow {
        compile(parse_definition(FLOW).unwrap()).unwrap()
    }

    fn node(wf: &Workflow, name: &str) -> String {
        format!("s{}", wf.step_id(name).unwrap())
    }

    #[test]
    fn shapes_say_what_each_step_is() {
        let wf = workflow();
        let m = to_mermaid(&wf);
        assert!(m.starts_with("flowchart TD\n"), "{m}");
        assert!(m.contains("%% expense@1.2.0"));
        let line = |name: &str| {
            let id = node(&wf, name);
            m.lines()
                .find(|l| {
                    l.trim_start().starts_with(&format!("{id}["))
                        || l.trim_start().starts_with(&format!("{id}("))
                        || l.trim_start().starts_with(&format!("{id}{{"))
                })
                .unwrap_or_else(|| panic!("no node for {name} in\n{m}"))
                .trim()
                .to_string()
        };
        assert_eq!(
            line("submit"),
            format!(
                "{}[\"submit<br/><i>set</i>\"]:::machine",
                node(&wf, "submit")
            )
        );
        assert_eq!(
            line("approve"),
            format!(
                "{}([\"approve<br/><i>human: boss, deputy</i>\"]):::human",
                node(&wf, "approve")
            )
        );
        assert!(line("anyone").contains("human: anyone"));
        assert_eq!(
            line("route"),
            format!("{}{{\"route\"}}:::gateway", node(&wf, "route"))
        );
        assert_eq!(
            line("wait"),
            format!("{}((\"wait<br/><i>2s</i>\")):::timer", node(&wf, "wait"))
        );
        assert!(m.contains(&format!("start --> {}", node(&wf, "submit"))));
    }

    #[test]
    fn edges_carry_conditions_defaults_and_outcomes() {
        let wf = workflow();
        let m = to_mermaid(&wf);
        let (submit, approve, route, end, wait, anyone, comp) = (
            node(&wf, "submit"),
            node(&wf, "approve"),
            node(&wf, "route"),
            node(&wf, "end"),
            node(&wf, "wait"),
            node(&wf, "anyone"),
            node(&wf, "compensate"),
        );
        assert!(m.contains(&format!("    {submit} --> {approve}\n")), "{m}");
        assert!(
            m.contains(&format!("    {submit} -.->|\"on failure\"| {comp}\n")),
            "{m}"
        );
        assert!(
            m.contains(&format!("    {approve} -.->|\"on timeout\"| {anyone}\n")),
            "{m}"
        );
        assert!(
            m.contains(&format!(
                "    {route} -->|\"context.amount #lt; 100 #amp;#amp; context.note != #quot;x#quot;\"| {end}\n"
            )),
            "{m}"
        );
        assert!(
            m.contains(&format!("    {route} -->|\"default\"| {wait}\n")),
            "{m}"
        );
        // One line per edge, one per node, and no raw quote inside a label.
        let arrows = m
            .lines()
            .filter(|l| l.contains("-->") || l.contains("-.->"))
            .count();
        assert_eq!(arrows, wf.edges.len() + 1);
        assert!(!m.contains("\"x\""));
        // A step named `end` (a Mermaid keyword) is never used as a node id.
        assert!(!m.lines().any(|l| l.trim_start().starts_with("end")));
    }

    #[test]
    fn escape_neutralises_mermaid_syntax() {
        assert_eq!(
            escape("a \"b\" <c> & #d\ne"),
            "a #quot;b#quot; #lt;c#gt; #amp; #35;d e"
        );
    }
}
