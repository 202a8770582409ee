//! `weir message send|list`: messages by name and key for event steps with `correlation`,
//! on the Redis engine (`weir signal` sends one to an instance by id).
//!
//! Every flag is checked before connecting ([`SendMessage::check`], the tenant, the data as
//! JSON), so bad input is one line saying what to fix, and nothing is sent.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::anyhow;
use clap::{Args, Subcommand};
use serde_json::Value;
use weir::model::{KeptMessage, MessageFilter, MessageOutcome, MessageSent, SendMessage};
use weir::{Engine, Timestamp};

use super::printer::out;
use super::remote::{client, engine_error, parse_duration, print_json, when};
use super::Global;

/// The most kept messages `weir message list` prints by default.
pub(crate) const DEFAULT_LIST_LIMIT: usize = 100;

/// `weir message ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum MessageCommand {
    /// Send a message NAME with a correlation key: it goes to the instance that has waited
    /// longest on (NAME, KEY), or is kept for one until its time to live runs out.
    Send(SendArgs),
    /// List the messages kept for instances that do not wait yet, oldest first.
    List(ListArgs),
}

/// `weir message send NAME --key KEY`.
#[derive(Debug, Args)]
pub(crate) struct SendArgs {
    /// The message name an event step waits on (its `event`), e.g. payment_received.
    #[arg(value_name = "NAME")]
    pub name: String,
    /// The correlation key, e.g. an order id (the value of the step's `correlation`).
    #[arg(long, value_name = "KEY")]
    pub key: String,
    /// The data (JSON; default `{}`), stored under the event step's `output`.
    #[arg(long, value_name = "JSON")]
    pub data: Option<String>,
    /// The message id: the same id within its time to live is delivered once (default: a
    /// new one).
    #[arg(long = "id", value_name = "MSG_ID")]
    pub message_id: Option<String>,
    /// How long the message is kept when no instance waits for it yet, e.g. 10m (default
    /// 1h).
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub ttl: Option<Duration>,
    /// The tenant whose instances may receive it (default: instances without a tenant).
    #[arg(long, value_name = "T")]
    pub tenant: Option<String>,
    /// Print what became of it as JSON (`{id, outcome, instance_id?}`).
    #[arg(long)]
    pub json: bool,
}

/// `weir message list`.
#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// Only messages of this name.
    #[arg(long, value_name = "N")]
    pub name: Option<String>,
    /// Only messages with this correlation key.
    #[arg(long, value_name = "K")]
    pub key: Option<String>,
    /// Only this tenant's messages (default: every tenant's).
    #[arg(long, value_name = "T")]
    pub tenant: Option<String>,
    /// At most this many, oldest first.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_LIST_LIMIT)]
    pub limit: usize,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `weir message ...`.
pub(crate) async fn run(global: &Global, cmd: MessageCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        MessageCommand::Send(args) => send(global, args).await,
        MessageCommand::List(args) => list(global, args).await,
    }
}

/// The message `weir message send` sends, checked: an error names the flag to fix.
pub(crate) fn message_of(args: &SendArgs) -> anyhow::Result<SendMessage> {
    let data = match args.data.as_deref() {
        None => Value::Object(Default::default()),
        Some(text) => serde_json::from_str::<Value>(text).map_err(|e| {
            anyhow!("--data is not JSON ({e}): write a JSON value, like '{{\"amount\": 30}}'")
        })?,
    };
    if let Some(t) = &args.tenant {
        weir::api::check_tenant(t).map_err(|m| anyhow!("--tenant: {m}"))?;
    }
    let mut message =
        SendMessage::new(args.name.clone(), args.key.clone(), data).for_tenant(args.tenant.clone());
    message.id = args.message_id.clone();
    message.ttl = args.ttl;
    message
        .check()
        .map_err(|m| anyhow!("{m}; nothing was sent"))?;
    Ok(message)
}

/// Runs `weir message send`: prints what became of the message.
async fn send(global: &Global, args: SendArgs) -> anyhow::Result<ExitCode> {
    let message = message_of(&args)?;
    let ttl = message.ttl.unwrap_or(weir::model::DEFAULT_MESSAGE_TTL);
    let client = client(global).await?;
    let sent = client
        .send_message(message)
        .await
        .map_err(|e| engine_error(global, e))?;
    if args.json {
        print_json(&sent)?;
    } else {
        out(&sent_text(&sent, &args, Timestamp::now_system().after(ttl)));
    }
    Ok(ExitCode::SUCCESS)
}

/// What became of a message, for a person: `delivered ID to INSTANCE`, `kept ID until T
/// ...` or `duplicate ID ...`.
fn sent_text(sent: &MessageSent, args: &SendArgs, kept_until: Timestamp) -> String {
    match sent.outcome {
        MessageOutcome::Delivered => format!(
            "delivered {} to {}",
            sent.id,
            sent.instance_id.as_deref().unwrap_or("an instance")
        ),
        MessageOutcome::Kept => format!(
            "kept {} until {} (no instance waits on {} with key {} yet)",
            sent.id,
            when(Some(kept_until)),
            args.name,
            args.key
        ),
        MessageOutcome::Duplicate => format!(
            "duplicate {}: a message with this id was sent within its time to live; nothing \
             was done",
            sent.id
        ),
    }
}

/// Runs `weir message list`.
async fn list(global: &Global, args: ListArgs) -> anyhow::Result<ExitCode> {
    if let Some(t) = &args.tenant {
        weir::api::check_tenant(t).map_err(|m| anyhow!("--tenant: {m}"))?;
    }
    if let Some(n) = &args.name {
        weir::model::check_message_name(n).map_err(|m| anyhow!("--name: {m}"))?;
    }
    let client = client(global).await?;
    let filter = MessageFilter {
        tenant_id: args.tenant.clone(),
        name: args.name.clone(),
        key: args.key.clone(),
    };
    let kept = client
        .list_messages(&filter)
        .await
        .map_err(|e| engine_error(global, e))?;
    let kept: Vec<KeptMessage> = kept.into_iter().take(args.limit).collect();
    if args.json {
        print_json(&kept)?;
        return Ok(ExitCode::SUCCESS);
    }
    if kept.is_empty() {
        out("no kept messages");
        return Ok(ExitCode::SUCCESS);
    }
    print_table(&kept);
    Ok(ExitCode::SUCCESS)
}

fn print_table(kept: &[KeptMessage]) {
    let width =
        |f: fn(&KeptMessage) -> usize, min: usize| kept.iter().map(f).max().unwrap_or(min).max(min);
    let id_w = width(|m| m.id.len(), 2);
    let name_w = width(|m| m.name.len(), 4);
    let key_w = width(|m| m.key.len(), 3);
    let tenant_w = width(|m| m.tenant_id.as_deref().map_or(1, str::len), 6);
    out(&format!(
        "{:<id_w$}  {:<name_w$}  {:<key_w$}  {:<tenant_w$}  {:<24}  {:<24}  data",
        "id", "name", "key", "tenant", "sent at", "expires at"
    ));
    for m in kept {
        out(&format!(
            "{:<id_w$}  {:<name_w$}  {:<key_w$}  {:<tenant_w$}  {:<24}  {:<24}  {}",
            m.id,
            m.name,
            m.key,
            m.tenant_id.as_deref().unwrap_or("-"),
            when(Some(m.sent_at)),
            when(Some(m.expires_at)),
            m.data
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(name: &str, key: &str) -> SendArgs {
        SendArgs {
            name: name.into(),
            key: key.into(),
            data: None,
            message_id: None,
            ttl: None,
            tenant: None,
            json: false,
        }
    }

    #[test]
    fn a_message_is_checked_before_anything_is_sent() {
        let m = message_of(&args("payment_received", "A-17")).unwrap();
        assert_eq!(m.data, serde_json::json!({}));
        for (bad, says) in [
            (
                SendArgs {
                    data: Some("{".into()),
                    ..args("p", "k")
                },
                "--data is not JSON",
            ),
            (args("has space", "k"), "invalid message name"),
            (args("p", ""), "invalid message key"),
            (
                SendArgs {
                    ttl: Some(Duration::ZERO),
                    ..args("p", "k")
                },
                "ttl must be longer than zero",
            ),
            (
                SendArgs {
                    tenant: Some("a b".into()),
                    ..args("p", "k")
                },
                "--tenant",
            ),
        ] {
            let e = message_of(&bad).unwrap_err().to_string();
            assert!(e.contains(says), "{e}");
        }
    }

    #[test]
    fn each_outcome_reads_as_what_became_of_the_message() {
        let a = args("payment_received", "A-17");
        let sent = |outcome, instance_id: Option<&str>| MessageSent {
            id: "m1".into(),
            outcome,
            instance_id: instance_id.map(str::to_string),
        };
        let at = Timestamp::now_system();
        assert_eq!(
            sent_text(&sent(MessageOutcome::Delivered, Some("o1")), &a, at),
            "delivered m1 to o1"
        );
        assert!(
            sent_text(&sent(MessageOutcome::Kept, None), &a, at).starts_with("kept m1 until 20")
        );
        assert!(
            sent_text(&sent(MessageOutcome::Duplicate, None), &a, at).starts_with("duplicate m1")
        );
    }
}
