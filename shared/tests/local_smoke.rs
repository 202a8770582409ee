//! A first end-to-end run of the LocalEngine: machine, human, gateway, join.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;
use weir::model::InstanceStatus;
use weir::Engine;
use weir::{parse_definition, LocalEngine, StartOptions, Step, StepContext, StepError};

struct Set;

#[async_trait]
impl Step for Set {
    async fn execute(&self, ctx: &mut StepContext) -> Result<(), StepError> {
        if let Some(map) = ctx.config().as_object().cloned() {
            for (k, v) in map {
                ctx.set(k, v);
            }
        }
        Ok(())
    }
}

const FLOW: &str = r#"
name: smoke
version: "1.0.0"
steps:
  submit: { type: machine, handler: set, config: { submitted: true } }
  a: { type: machine, handler: set, config: { a: 1 } }
  b: { type: machine, handler: set, config: { b: 2 } }
  join: { type: machine, handler: set, config: { joined: true } }
  approve:
    type: human
    assignee: boss
    form: { type: object, required: [approved], properties: { approved: { type: boolean } } }
  route: { type: gateway }
  pay: { type: machine, handler: set, config: { paid: true } }
  reject: { type: machine, handler: set, config: { rejected: true } }
edges:
  - { from: submit, to: a }
  - { from: submit, to: b }
  - { from: a, to: join }
  - { from: b, to: join }
  - { from: join, to: approve }
  - { from: approve, to: route }
  - { from: route, to: pay, condition: "context.approved == true" }
  - { from: route, to: reject, default: true }
"#;

#[tokio::test]
async fn runs_to_a_task_then_to_the_end() {
    let engine = LocalEngine::builder().handler("set", Set).build();
    engine
        .register_definition(parse_definition(FLOW).unwrap())
        .await
        .unwrap();
    let inst = engine
        .start_workflow("smoke", StartOptions::default())
        .await
        .unwrap();
    let inst = engine.wait(&inst.id, Duration::from_secs(5)).await.unwrap();
    assert_eq!(inst.status, InstanceStatus::Waiting);
    assert_eq!(inst.current_steps, vec!["approve"]);
    assert_eq!(inst.context["joined"], json!(true));
    let done = engine
        .complete_human_task(&inst.id, "approve", "boss", json!({ "approved": false }))
        .await
        .unwrap();
    assert_eq!(done.status, InstanceStatus::Completed);
    assert_eq!(done.context["rejected"], json!(true));
    assert!(done.context.get("paid").is_none());
    let history = engine.history(&inst.id).await.unwrap();
    let steps: Vec<&str> = history.iter().map(|r| &*r.step).collect();
    assert_eq!(steps.iter().filter(|s| **s == "join").count(), 1);
}
