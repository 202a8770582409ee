//! The benchmark workflows.

use weir::model::{Definition, EdgeDef, MachineStep, StepDef};

fn noop() -> StepDef {
    StepDef::Machine(MachineStep {
        handler: "noop".into(),
        config: serde_json::Value::Null,
        queue: None,
        retry: None,
        timeout: None,
        description: None,
    })
}

fn edge(from: &str, to: &str) -> EdgeDef {
    EdgeDef {
        from: from.into(),
        to: to.into(),
        condition: None,
        default: false,
        on: Default::default(),
    }
}

/// `s0 -> s1 -> ... -> s9`, all `noop`.
pub fn linear(steps: usize) -> Definition {
    let names: Vec<String> = (0..steps).map(|i| format!("s{i}")).collect();
    Definition {
        name: "bench_linear".into(),
        version: "1.0.0".into(),
        description: Some(format!("{steps} noop steps in a row")),
        initial_step: Some(names[0].clone()),
        steps: names.iter().map(|n| (n.clone(), noop())).collect(),
        edges: names.windows(2).map(|w| edge(&w[0], &w[1])).collect(),
        tenants: Vec::new(),
    }
}

/// `start -> b0..b{width-1} -> join`, all `noop`.
pub fn fan_out(width: usize) -> Definition {
    let mut steps: Vec<(String, StepDef)> = vec![("start".into(), noop()), ("join".into(), noop())];
    let mut edges = Vec::new();
    for i in 0..width {
        let b = format!("b{i}");
        steps.push((b.clone(), noop()));
        edges.push(edge("start", &b));
        edges.push(edge(&b, "join"));
    }
    Definition {
        name: "bench_fanout".into(),
        version: "1.0.0".into(),
        description: Some(format!("1 -> {width} -> 1 fan-out and join")),
        initial_step: Some("start".into()),
        steps: steps.into_iter().collect(),
        edges,
        tenants: Vec::new(),
    }
}

/// Machine steps per instance of each workload.
pub fn steps_of(def: &Definition) -> usize {
    def.steps.len()
}
