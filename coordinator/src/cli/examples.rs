//! The example workflows of `deploy/examples/`, built into the binary so that `weir demo`
//! works from any directory. Each comes with what the demo starts it with, the data it
//! gives its human tasks, and what the demo checks at the end.

use weir::model::InstanceStatus;

/// One example workflow and how the demo runs it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Example {
    /// Its file, relative to the repository root.
    pub path: &'static str,
    /// The file's text.
    pub source: &'static str,
    /// What it shows.
    pub shows: &'static str,
    /// The initial context (a JSON object).
    pub data: &'static str,
    /// Human task data: (step, JSON).
    pub tasks: &'static [(&'static str, &'static str)],
    /// Messages the demo sends when an event step waits: (message name, JSON data).
    pub messages: &'static [(&'static str, &'static str)],
    /// How it must end.
    pub expect: InstanceStatus,
    /// Context values it must end with: (key, JSON value).
    pub expect_context: &'static [(&'static str, &'static str)],
}

/// Every example, in the order the demo runs them.
pub(crate) const EXAMPLES: [Example; 6] = [
    Example {
        path: "deploy/examples/expense_approval.yaml",
        source: include_str!("../../../deploy/examples/expense_approval.yaml"),
        shows: "a human task (completed by the demo as the manager), then a gateway",
        data: r#"{"employee": "ann", "amount": 120}"#,
        tasks: &[(
            "approve",
            r#"{"approved": true, "comment": "receipt checked"}"#,
        )],
        messages: &[],
        expect: InstanceStatus::Completed,
        expect_context: &[("approved", "true"), ("paid", "true")],
    },
    Example {
        path: "deploy/examples/order_fanout.yaml",
        source: include_str!("../../../deploy/examples/order_fanout.yaml"),
        shows: "parallel fan-out and a join (two 300ms steps overlap)",
        data: r#"{"order": "A-17"}"#,
        tasks: &[],
        messages: &[],
        expect: InstanceStatus::Completed,
        expect_context: &[("shipped", "true")],
    },
    Example {
        path: "deploy/examples/ticket_routing.yaml",
        source: include_str!("../../../deploy/examples/ticket_routing.yaml"),
        shows: "a gateway routing by a condition; the paths not taken are skipped",
        data: r#"{"ticket": "T-9", "severity": 4}"#,
        tasks: &[],
        messages: &[],
        expect: InstanceStatus::Completed,
        expect_context: &[("queue", r#""on_call""#)],
    },
    Example {
        path: "deploy/examples/reminder_timer.yaml",
        source: include_str!("../../../deploy/examples/reminder_timer.yaml"),
        shows: "a durable timer step (1s)",
        data: "{}",
        tasks: &[],
        messages: &[],
        expect: InstanceStatus::Completed,
        expect_context: &[("reminder", r#""sent""#)],
    },
    Example {
        path: "deploy/examples/flaky_payment.yaml",
        source: include_str!("../../../deploy/examples/flaky_payment.yaml"),
        shows: "retries with backoff: two failed attempts, then success",
        data: "{}",
        tasks: &[],
        messages: &[],
        expect: InstanceStatus::Completed,
        expect_context: &[("charged", "true")],
    },
    Example {
        path: "deploy/examples/order_payment.yaml",
        source: include_str!("../../../deploy/examples/order_payment.yaml"),
        shows:
            "an event step waiting for a payment message (sent by the demo, keyed by the order id)",
        data: r#"{"order_id": "A-17"}"#,
        tasks: &[],
        messages: &[(
            "payment_received",
            r#"{"amount": 30, "provider": "stripe"}"#,
        )],
        expect: InstanceStatus::Completed,
        expect_context: &[
            ("shipped", "true"),
            ("payment", r#"{"amount": 30, "provider": "stripe"}"#),
        ],
    },
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::definition::load_text;

    #[test]
    fn every_example_is_valid_and_its_demo_data_parses() {
        for ex in EXAMPLES {
            let wf = load_text(ex.path, ex.source).unwrap();
            assert!(
                ex.path.ends_with(&format!("{}.yaml", wf.name)),
                "{}",
                ex.path
            );
            assert!(serde_json::from_str::<serde_json::Value>(ex.data)
                .unwrap()
                .is_object());
            for (step, data) in ex.tasks {
                assert!(wf.step_id(step).is_some(), "{step}");
                serde_json::from_str::<serde_json::Value>(data).unwrap();
            }
            for (_, data) in ex.messages {
                serde_json::from_str::<serde_json::Value>(data).unwrap();
            }
            for (_, v) in ex.expect_context {
                serde_json::from_str::<serde_json::Value>(v).unwrap();
            }
        }
    }
}
