//! Reminder actors. One `ReminderScheduler` per node claims the reminders due within the
//! horizon that no live node owns (unowned, this node's, or owned by a node whose liveness
//! lease lapsed) and runs one `ReminderActor` per claimed reminder; the actor sleeps until the
//! due time, fires (see `crate::coord::reminders` for why that is exactly-once), and either
//! re-arms for the next cron slot or stops. A reminder's owner is a node, and the node's
//! lease is its liveness key in Redis: when a node dies, the others take its reminders over at
//! their next claim after the lease runs out.

use std::{collections::HashMap, sync::Arc, time::Duration};

use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};
use uuid::Uuid;

use super::env::ReminderEnv;
use crate::{coord::reminders::Fired, store::reminders::ReminderRow};

/// Messages to the scheduler.
pub enum SchedulerMsg {
    /// Claim due reminders and start actors for new ones.
    Claim,
    /// A reminder actor finished (fired for the last time within the horizon, or skipped).
    Finished(Uuid),
}

/// The per-node scheduler.
pub struct ReminderScheduler;

/// Scheduler state: the running actors by reminder id.
pub struct SchedulerState {
    env: Arc<ReminderEnv>,
    running: HashMap<Uuid, ActorRef<ReminderMsg>>,
    /// Claims since the last look at this node's own rows.
    ticks: u32,
}

impl Actor for ReminderScheduler {
    type Msg = SchedulerMsg;
    type State = SchedulerState;
    type Arguments = Arc<ReminderEnv>;

    async fn pre_start(
        &self,
        myself: ActorRef<SchedulerMsg>,
        env: Arc<ReminderEnv>,
    ) -> Result<SchedulerState, ActorProcessingErr> {
        myself.send_interval(env.claim_every.max(Duration::from_millis(10)), || SchedulerMsg::Claim);
        // A reminder due before the next periodic claim asks for one now.
        let (due_soon, me) = (env.due_soon.clone(), myself.clone());
        tokio::spawn(async move {
            loop {
                due_soon.notified().await;
                if me.cast(SchedulerMsg::Claim).is_err() {
                    return;
                }
            }
        });
        Ok(SchedulerState { env, running: HashMap::new(), ticks: 0 })
    }

    async fn handle(
        &self,
        myself: ActorRef<SchedulerMsg>,
        msg: SchedulerMsg,
        state: &mut SchedulerState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SchedulerMsg::Claim => claim(&myself, state).await,
            SchedulerMsg::Finished(id) => {
                state.running.remove(&id);
            }
        }
        crate::metrics::reminder_actors().set(state.running.len() as i64);
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        _myself: ActorRef<SchedulerMsg>,
        evt: SupervisionEvent,
        state: &mut SchedulerState,
    ) -> Result<(), ActorProcessingErr> {
        let gone = match &evt {
            SupervisionEvent::ActorTerminated(cell, _, _) => Some(cell.get_id()),
            SupervisionEvent::ActorFailed(cell, err) => {
                // Its reminder stays claimed by this node and is picked up at the next claim.
                tracing::error!(error = %err, "reminder actor failed");
                Some(cell.get_id())
            }
            _ => None,
        };
        if let Some(id) = gone {
            state.running.retain(|_, a| a.get_id() != id);
        }
        Ok(())
    }
}

const OWN_ROWS_EVERY: u32 = 5;

async fn claim(myself: &ActorRef<SchedulerMsg>, state: &mut SchedulerState) {
    let env = state.env.clone();
    // Without a current view of which nodes live, only this node's own reminders are safe
    // to run (a node that cannot see Redis must not take over anyone's).
    let live = env.liveness.live_node_ids().await.unwrap_or_else(|| vec![env.node_id.clone()]);
    let (horizon, limit) = (env.horizon, env.claim_batch);
    // This node's own rows need an actor only after a restart, a failed actor, or a cron run
    // that was past the horizon when it last fired: a read every few claims covers them all
    // (well before they are due, since the horizon is much longer than that period).
    if state.ticks.is_multiple_of(OWN_ROWS_EVERY) {
        match env.store.own_due(&env.node_id, horizon, limit).await {
            Ok(rows) => {
                start_actors(myself, state, rows).await;
            }
            Err(e) => tracing::warn!(error = %e, "reading this node's reminders failed"),
        }
    }
    state.ticks = state.ticks.wrapping_add(1);
    loop {
        let due = match env.store.claim_due(&env.node_id, &live, horizon, limit).await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(error = %e, "claiming reminders failed");
                return;
            }
        };
        let full = due.len() as i64 >= limit;
        let started = start_actors(myself, state, due).await;
        // A full batch may have left more due; claim again unless nothing new came back.
        if !full || started == 0 {
            return;
        }
    }
}

async fn start_actors(myself: &ActorRef<SchedulerMsg>, state: &mut SchedulerState, due: Vec<ReminderRow>) -> usize {
    let mut started = 0;
    for row in due {
        if state.running.contains_key(&row.id) {
            continue;
        }
        let id = row.id;
        let args = ReminderArgs { row, env: state.env.clone(), scheduler: myself.clone() };
        match Actor::spawn_linked(None, ReminderActor, args, myself.get_cell()).await {
            Ok((actor, _)) => {
                state.running.insert(id, actor);
                started += 1;
            }
            Err(e) => tracing::warn!(reminder = %id, error = %e, "could not start a reminder actor"),
        }
    }
    started
}

/// Messages to a reminder actor.
pub enum ReminderMsg {
    /// The due time has come.
    Fire,
}

/// One live reminder.
pub struct ReminderActor;

/// Start-up arguments.
pub struct ReminderArgs {
    row: ReminderRow,
    env: Arc<ReminderEnv>,
    scheduler: ActorRef<SchedulerMsg>,
}

fn arm(myself: &ActorRef<ReminderMsg>, row: &ReminderRow, env: &ReminderEnv) {
    let delay = row.next_fire_at.map(|due| crate::clock::until(&*env.clock, due)).unwrap_or_default();
    myself.send_after(delay, || ReminderMsg::Fire);
}

impl Actor for ReminderActor {
    type Msg = ReminderMsg;
    type State = ReminderArgs;
    type Arguments = ReminderArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<ReminderMsg>,
        args: ReminderArgs,
    ) -> Result<ReminderArgs, ActorProcessingErr> {
        arm(&myself, &args.row, &args.env);
        Ok(args)
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<ReminderMsg>,
        state: &mut ReminderArgs,
    ) -> Result<(), ActorProcessingErr> {
        let _ = state.scheduler.cast(SchedulerMsg::Finished(state.row.id));
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<ReminderMsg>,
        msg: ReminderMsg,
        state: &mut ReminderArgs,
    ) -> Result<(), ActorProcessingErr> {
        let ReminderMsg::Fire = msg;
        let horizon = state.env.horizon;
        match state.env.firer.fire(state.row.clone()).await {
            Ok(Fired::Sent(Some(next))) if next <= state.env.clock.now() + horizon => {
                state.row.next_fire_at = Some(next);
                state.row.fire_count += 1;
                arm(&myself, &state.row, &state.env);
            }
            Ok(_) => myself.stop(None),
            Err(e) => {
                // Left claimed and due; the next claim starts a fresh actor that retries.
                tracing::warn!(reminder = %state.row.id, error = %e, "firing failed");
                myself.stop(None);
            }
        }
        Ok(())
    }
}
