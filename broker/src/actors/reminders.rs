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

#[cfg(test)]
mod tests {
    //! The scheduler on paused time, with an in-memory claim table and firer.

    use std::{
        collections::BTreeMap,
        sync::Mutex,
        time::{Duration, SystemTime},
    };

    use tokio::time::sleep;

    use super::*;
    use crate::{
        actors::fakes::{self, lock},
        clock::{Clock, TokioClock},
        cluster::SingleNode,
    };

    const HORIZON: Duration = Duration::from_secs(60);
    const CLAIM_EVERY: Duration = Duration::from_secs(10);
    const REPEAT_EVERY: Duration = Duration::from_secs(45);

    struct Harness {
        store: Arc<fakes::Reminders>,
        firings: Arc<fakes::Firings>,
        clock: Arc<dyn Clock>,
        env: Arc<ReminderEnv>,
        start: SystemTime,
    }

    impl Harness {
        async fn start(rows: Vec<ReminderRow>) -> Harness {
            let clock: Arc<dyn Clock> = Arc::new(TokioClock::new());
            let store = Arc::new(fakes::Reminders {
                rows: Mutex::new(rows.into_iter().map(|r| (r.id, (r, false))).collect::<BTreeMap<_, _>>()),
                clock: clock.clone(),
                claimed_at: Mutex::default(),
            });
            let firings =
                Arc::new(fakes::Firings { fired: Mutex::default(), clock: clock.clone(), every: REPEAT_EVERY });
            let env = Arc::new(ReminderEnv {
                store: store.clone(),
                firer: firings.clone(),
                node_id: "n1".into(),
                liveness: Arc::new(SingleNode("n1".into())),
                horizon: HORIZON,
                claim_every: CLAIM_EVERY,
                claim_batch: 100,
                clock: clock.clone(),
                due_soon: Arc::default(),
            });
            Actor::spawn(None, ReminderScheduler, env.clone()).await.expect("scheduler");
            let start = clock.now();
            Harness { store, firings, clock, env, start }
        }

        /// Seconds after the start at which `id` fired.
        fn fired(&self, id: Uuid) -> Vec<u64> {
            lock(&self.firings.fired)
                .iter()
                .filter(|(r, _)| *r == id)
                .map(|(_, t)| t.duration_since(self.start).unwrap_or_default().as_secs())
                .collect()
        }

        fn claimed_at(&self, id: Uuid) -> Option<u64> {
            lock(&self.store.claimed_at)
                .iter()
                .find(|(r, _)| *r == id)
                .map(|(_, t)| t.duration_since(self.start).unwrap_or_default().as_secs())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn reminders_are_claimed_within_the_horizon_and_fire_once_at_their_time() {
        let now = SystemTime::now();
        let soon = fakes::reminder(now + Duration::from_secs(30), false);
        let later = fakes::reminder(now + Duration::from_secs(200), false);
        let (soon_id, later_id) = (soon.id, later.id);
        let h = Harness::start(vec![soon, later]).await;

        sleep(Duration::from_secs(29)).await;
        assert!(h.fired(soon_id).is_empty(), "fired early");
        sleep(Duration::from_secs(2)).await;
        assert_eq!(h.fired(soon_id), [30], "fired at its due time");
        assert_eq!(h.claimed_at(later_id), None, "a reminder beyond the horizon is left for later claims");

        sleep(Duration::from_secs(200)).await;
        let claimed = h.claimed_at(later_id).expect("claimed once within the horizon");
        assert!((140 - 10..=140).contains(&claimed), "claimed at {claimed}s, within one claim period of 140s");
        assert_eq!(h.fired(later_id), [200]);
        assert_eq!(h.fired(soon_id), [30], "fired once");
    }

    #[tokio::test(start_paused = true)]
    async fn a_repeating_reminder_re_arms_itself_within_the_horizon() {
        let first = SystemTime::now() + Duration::from_secs(20);
        let row = fakes::reminder(first, true);
        let id = row.id;
        let h = Harness::start(vec![row]).await;
        sleep(Duration::from_secs(20 + 3 * 45 + 1)).await;
        assert_eq!(h.fired(id), [20, 65, 110, 155], "every 45 s, from one claim");
        assert_eq!(lock(&h.store.claimed_at).len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_reminder_due_before_the_next_claim_is_claimed_when_poked() {
        let h = Harness::start(Vec::new()).await;
        sleep(Duration::from_secs(1)).await;
        // Created now, due in 3 s: the next periodic claim (at 10 s) would be too late.
        let row = fakes::reminder(h.clock.now() + Duration::from_secs(3), false);
        let id = row.id;
        lock(&h.store.rows).insert(id, (row, false));
        h.env.due_soon.notify_one();
        sleep(Duration::from_secs(5)).await;
        assert_eq!(h.fired(id), [4], "fired on time, not at the next claim");
    }
}
