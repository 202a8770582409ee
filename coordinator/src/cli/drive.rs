//! Runs one instance to its end: start it, wait, answer its human tasks, wait again.
//!
//! Human tasks are answered from data given up front (`--task STEP=JSON`, or the demo's),
//! else by asking on the terminal when there is one. Each task is completed as its assignee,
//! else its first candidate, else [`DEFAULT_USER`]. Ctrl-C cancels the instance.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use serde_json::Value;
use weir::api::{EngineError, InstanceView, StartOptions, TaskFilter, WaitingFor};
use weir::model::{Actor, AttemptRecord, SendMessage, Task};
use weir::Engine;

use super::printer::Printer;
use super::prompt;

/// Who completes a task that names no assignee and no candidate.
pub(crate) const DEFAULT_USER: &str = "cli";

/// How long one wait lasts before it is renewed (a run may sleep on timers for days).
const WAIT_SLICE: Duration = Duration::from_secs(3600);

/// The data for human tasks: given up front, in order per step, and whether a person may be
/// asked for the rest.
#[derive(Debug, Default)]
pub(crate) struct Answers {
    given: HashMap<String, VecDeque<Value>>,
    /// Message data by message name, in order, for event steps (`--message NAME=JSON`).
    messages: HashMap<String, VecDeque<Value>>,
    interactive: bool,
    source: &'static str,
}

impl Answers {
    /// Answers given up front (`source` names where they came from, e.g. `--task`); with
    /// `interactive`, the rest are asked on the terminal.
    pub(crate) fn new(
        given: Vec<(String, Value)>,
        interactive: bool,
        source: &'static str,
    ) -> Answers {
        let mut map: HashMap<String, VecDeque<Value>> = HashMap::new();
        for (step, data) in given {
            map.entry(step).or_default().push_back(data);
        }
        Answers {
            given: map,
            messages: HashMap::new(),
            interactive,
            source,
        }
    }

    /// Adds message data for event steps, in order per message name.
    pub(crate) fn with_messages(mut self, messages: Vec<(String, Value)>) -> Answers {
        for (name, data) in messages {
            self.messages.entry(name).or_default().push_back(data);
        }
        self
    }
}

/// How a run ended.
#[derive(Debug)]
pub(crate) struct Finished {
    /// The instance at the end.
    pub view: InstanceView,
    /// Its attempts.
    pub history: Vec<AttemptRecord>,
    /// From start to end.
    pub elapsed: Duration,
    /// Ended by Ctrl-C (the instance was canceled).
    pub interrupted: bool,
}

impl Finished {
    /// Distinct steps that ran (succeeded, failed or timed out), and attempts in all.
    pub(crate) fn counts(&self) -> (usize, usize) {
        use weir::model::AttemptStatus as A;
        let ran: Vec<&AttemptRecord> = self
            .history
            .iter()
            .filter(|r| {
                matches!(
                    r.status,
                    A::Completed | A::Failed | A::Retrying | A::TimedOut
                )
            })
            .collect();
        let mut steps: Vec<&str> = ran
            .iter()
            .filter(|r| r.status != A::Retrying)
            .map(|r| &*r.step)
            .collect();
        steps.sort_unstable();
        steps.dedup();
        (steps.len(), ran.len())
    }
}

/// Starts `name` and runs the instance until it is completed, failed or canceled.
pub(crate) async fn drive(
    engine: &dyn Engine,
    name: &str,
    options: StartOptions,
    answers: &mut Answers,
    printer: &Printer,
) -> anyhow::Result<Finished> {
    let started = Instant::now();
    let view = engine.start_workflow(name, options).await?;
    let id = view.id.clone();
    let interrupted = tokio::select! {
        r = settle_and_answer(engine, &id, answers, printer) => { r?; false }
        () = ctrl_c() => {
            super::printer::out("");
            // Already finished is fine: the view below says how it ended.
            let _ = engine
                .cancel_workflow(&id, Some("interrupted (Ctrl-C)"))
                .await;
            true
        }
    };
    let view = settle(engine, &id).await?;
    let history = engine.history(&id).await?;
    Ok(Finished {
        view,
        history,
        elapsed: started.elapsed(),
        interrupted,
    })
}

/// Waits, without limit, until the instance is completed, failed, canceled or waiting on a
/// person.
async fn settle(engine: &dyn Engine, id: &str) -> Result<InstanceView, EngineError> {
    loop {
        match engine.wait(id, WAIT_SLICE).await {
            Err(EngineError::WaitTimeout(..)) => continue,
            other => return other,
        }
    }
}

/// The instance's open human tasks, oldest first.
async fn open_tasks(engine: &dyn Engine, id: &str) -> Result<Vec<Task>, EngineError> {
    let filter = TaskFilter {
        instance_id: Some(id.to_string()),
        ..TaskFilter::default()
    };
    engine.list_tasks(&filter).await
}

/// Resolves on Ctrl-C; never, where signals cannot be listened to.
async fn ctrl_c() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}

async fn settle_and_answer(
    engine: &dyn Engine,
    id: &str,
    answers: &mut Answers,
    printer: &Printer,
) -> anyhow::Result<()> {
    loop {
        let view = settle(engine, id).await?;
        if view.status.is_terminal() {
            return Ok(());
        }
        // Waiting: answer the oldest open task, then look again (answering one may close
        // or open others).
        let tasks = open_tasks(engine, id).await?;
        if let Some(task) = tasks.into_iter().next() {
            answer(engine, &task, answers, printer).await?;
            continue;
        }
        let Some(wait) = view.waiting_for.first() else {
            bail!("instance {id} is {} but has no open task", view.status);
        };
        feed_message(engine, id, wait, answers, printer).await?;
    }
}

/// Sends an event step the next message given for its name: by its key (as a sender
/// would), or as a signal to this instance when the step has no key.
async fn feed_message(
    engine: &dyn Engine,
    id: &str,
    wait: &WaitingFor,
    answers: &mut Answers,
    printer: &Printer,
) -> anyhow::Result<()> {
    let Some(data) = answers
        .messages
        .get_mut(&wait.event)
        .and_then(VecDeque::pop_front)
    else {
        let key = wait
            .key
            .as_deref()
            .map(|k| format!(" with key {k:?}"))
            .unwrap_or_default();
        bail!(
            "instance {id} waits for message {:?}{key} at step {:?}: give its data with \
             --message {}=JSON",
            wait.event,
            wait.step,
            wait.event
        );
    };
    match &wait.key {
        Some(key) => {
            printer.note(&format!(
                "{}: sending message {} with key {key}: {data}",
                wait.step, wait.event
            ));
            let message = SendMessage::new(wait.event.clone(), key.clone(), data)
                .for_tenant(engine.get_instance(id).await?.tenant);
            engine.send_message(message).await?;
            // On the Redis engine a delivery is applied by the instance's partition a moment
            // later (and a message sent before the wait reached the correlation table is
            // kept, then received): wait until the instance took it.
            received(engine, id, wait).await?;
        }
        None => {
            printer.note(&format!(
                "{}: signaling {} to instance {id}: {data}",
                wait.step, wait.event
            ));
            engine.signal(id, &wait.event, data, None).await?;
        }
    }
    Ok(())
}

/// How long a sent message may take to reach the instance waiting on it.
const RECEIVE_DEADLINE: Duration = Duration::from_secs(30);

/// Waits until the instance no longer waits on `wait` (it received the message, or ended),
/// re-reading it every few milliseconds, for at most [`RECEIVE_DEADLINE`].
async fn received(engine: &dyn Engine, id: &str, wait: &WaitingFor) -> anyhow::Result<()> {
    let deadline = Instant::now() + RECEIVE_DEADLINE;
    let mut pause = Duration::from_millis(2);
    loop {
        let view = engine.get_instance(id).await?;
        if view.status.is_terminal() || !view.waiting_for.contains(wait) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!(
                "instance {id} still waits for message {:?} with key {:?} {}s after it was \
                 sent: check that a coordinator runs (`weir stats`)",
                wait.event,
                wait.key.as_deref().unwrap_or(""),
                RECEIVE_DEADLINE.as_secs()
            );
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// The user a task is completed as.
pub(crate) fn user_for(task: &Task) -> &str {
    task.assignee
        .as_deref()
        .or(task.candidates.first().map(String::as_str))
        .unwrap_or(DEFAULT_USER)
}

/// Who completes a task in `weir run`: [`user_for`], and when the task names no user but
/// candidate groups, that user as a member of its first group (`weir run` plays every
/// person of the workflow, as it plays the assignee).
fn actor_for(task: &Task) -> Actor {
    let mut actor = Actor::user(user_for(task));
    if task.assignee.is_none() && task.candidates.is_empty() {
        actor.groups = task.candidate_groups.iter().take(1).cloned().collect();
    }
    actor
}

async fn answer(
    engine: &dyn Engine,
    task: &Task,
    answers: &mut Answers,
    printer: &Printer,
) -> anyhow::Result<()> {
    let step = &*task.step;
    let actor = actor_for(task);
    let user = actor.user.as_str();
    let mut asked = false;
    loop {
        let given = answers.given.get_mut(step).and_then(VecDeque::pop_front);
        let from_source = given.is_some();
        let data = match given {
            Some(data) => {
                printer.note(&format!(
                    "{step}: completing as {user} with {data} (from {})",
                    answers.source
                ));
                data
            }
            None if answers.interactive => {
                let data = prompt::ask(task, user, !asked).await?;
                asked = true;
                data
            }
            None => bail!(
                "human step {step:?} needs data and stdin is not a terminal to ask for it: \
                 pass --task {step}='{}'",
                prompt::example(task)
            ),
        };
        match engine
            .complete_task_as(&task.instance_id, step, &actor, data.clone())
            .await
        {
            Ok(_) => return Ok(()),
            Err(EngineError::Refused(r)) if !from_source => prompt::refused(&r.to_string()),
            Err(e) => {
                return Err(anyhow!(
                    "the task of step {step:?} refused {data} given by {}: {e}",
                    answers.source
                ))
            }
        }
    }
}
