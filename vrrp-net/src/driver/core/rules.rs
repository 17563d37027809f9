//! Policy rules owned and healed like virtual addresses (see
//! [`super::owned`]): the desired set is the rules of every master, bound
//! instance and the static rules while the driver runs; every rule of the
//! kernel is followed (a host has few).

use std::collections::BTreeMap;

use vrrp_core::Timestamp;

use super::owned::{Installable, Op};
use super::{DriverCore, Effect};
use crate::rule::{Rule, RuleEvent, RuleKey};

impl Installable for Rule {
    type Key = RuleKey;
    const WHAT: &'static str = "rule";
    const FUZZY: bool = true;

    fn key(&self) -> RuleKey {
        Rule::key(self)
    }

    fn device(&self) -> Option<&str> {
        // Rules name their interfaces; the kernel needs no index.
        None
    }

    fn covers(wanted: &RuleKey, seen: &RuleKey) -> bool {
        wanted.covers(seen)
    }
}

impl DriverCore {
    /// Rules an earlier run recorded as added: removed at start unless
    /// wanted. Call before [`DriverCore::start`].
    pub fn restore_owned_rules(&mut self, owned: Vec<Rule>) {
        self.rules.restore(owned);
    }

    /// The rules the driver has added and not removed (also given by
    /// [`Effect::PersistRules`]).
    pub fn owned_rules(&self) -> Vec<Rule> {
        self.rules.owned()
    }

    /// A full read of the kernel's rules, started at `taken_at`.
    pub fn handle_rule_dump(&mut self, now: Timestamp, taken_at: Timestamp, rules: Vec<Rule>) {
        self.rules
            .replace_kernel(rules.iter().map(Rule::key).collect(), taken_at);
        self.drain(now);
    }

    /// Rule notifications, in the order received.
    pub fn handle_rule_events(&mut self, now: Timestamp, events: Vec<RuleEvent>) {
        for event in events {
            match event {
                RuleEvent::Added(r) => self.rules.event(now, r.key(), true),
                RuleEvent::Removed(r) => self.rules.event(now, r.key(), false),
            }
        }
        self.drain(now);
    }

    /// The outcome of an [`Effect::AddRule`] (`add`) or
    /// [`Effect::RemoveRule`]: `Ok(true)` done, `Ok(false)` it already was
    /// so (EEXIST / ENOENT), or the error.
    pub fn handle_rule_result(
        &mut self,
        now: Timestamp,
        rule: &Rule,
        add: bool,
        result: Result<bool, String>,
    ) {
        self.rules.result(now, rule, add, result);
        self.changed = true;
        self.drain(now);
    }

    fn desired_rules(&self) -> BTreeMap<RuleKey, Rule> {
        let mut out = BTreeMap::new();
        if self.stopping || !self.started {
            return out;
        }
        for rule in self
            .rules
            .statics
            .iter()
            .chain(self.masters().flat_map(|e| e.spec.rules.iter()))
        {
            out.entry(rule.key()).or_insert_with(|| rule.clone());
        }
        out
    }

    /// Brings every rule the driver knows of to where it should be.
    pub(super) fn reconcile_rules(&mut self, now: Timestamp) {
        if !self.started {
            return;
        }
        let desired = self.desired_rules();
        let (ops, changed) = self.rules.reconcile(now, &desired, |_| None);
        self.changed |= changed;
        if !ops.is_empty() {
            self.flush_outbox();
        }
        for Op { add, entry, .. } in ops {
            self.effects.push_back(if add {
                Effect::AddRule(entry)
            } else {
                Effect::RemoveRule(entry)
            });
        }
        if self.rules.take_dirty() {
            self.effects
                .push_back(Effect::PersistRules(self.owned_rules()));
            self.changed = true;
        }
    }
}
