"""The status of a Deployment, after Kubernetes' calculateStatus, syncRolloutStatus and
checkPausedConditions: replica counts summed over its ReplicaSets, the Available
condition, and the Progressing condition with its usual reasons and progress deadline.
Pure: the time is a parameter."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec

from control.controllers.podcontrol import parse_time
from control.controllers.rollout import RS, Strategy
from netplane.model import Deployment
from netplane.model.apps import DeploymentCondition, DeploymentStatus

AVAILABLE = "Available"
PROGRESSING = "Progressing"
# Kubernetes' reasons (pkg/controller/deployment/util).
MIN_AVAILABLE = "MinimumReplicasAvailable"
MIN_UNAVAILABLE = "MinimumReplicasUnavailable"
NEW_RS_CREATED = "NewReplicaSetCreated"
FOUND_NEW_RS = "FoundNewReplicaSet"
RS_UPDATED = "ReplicaSetUpdated"
NEW_RS_AVAILABLE = "NewReplicaSetAvailable"
TIMED_OUT = "ProgressDeadlineExceeded"
FAILED_RS_CREATE = "ReplicaSetCreateError"
PAUSED = "DeploymentPaused"
RESUMED = "DeploymentResumed"
_NO_DEADLINE = 2**31 - 1  # math.MaxInt32: "no progress deadline"


def stamp(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def condition(type_: str, status: str, reason: str, message: str, now: float) -> DeploymentCondition:
    t = stamp(now)
    return DeploymentCondition(type=type_, status=status, reason=reason, message=message,
                               last_update_time=t, last_transition_time=t)


def get_condition(conds: list[DeploymentCondition], type_: str) -> DeploymentCondition | None:
    return next((c for c in conds if c.type == type_), None)


def set_condition(conds: list[DeploymentCondition], new: DeploymentCondition) -> list[DeploymentCondition]:
    """SetDeploymentCondition: the same status and reason change nothing; the same status
    keeps its lastTransitionTime."""
    current = get_condition(conds, new.type)
    if current is not None and current.status == new.status and current.reason == new.reason:
        return conds
    if current is not None and current.status == new.status:
        new = msgspec.structs.replace(new, last_transition_time=current.last_transition_time)
    return [*(c for c in conds if c.type != new.type), new]


def remove_condition(conds: list[DeploymentCondition], type_: str) -> list[DeploymentCondition]:
    return [c for c in conds if c.type != type_]


def has_deadline(d: Deployment) -> bool:
    return d.spec.progress_deadline_seconds != _NO_DEADLINE


def paused_conditions(d: Deployment, conds: list[DeploymentCondition],
                      now: float) -> list[DeploymentCondition]:
    """checkPausedConditions: Progressing=Unknown while paused, and once resumed."""
    if not has_deadline(d):
        return conds
    current = get_condition(conds, PROGRESSING)
    if current is not None and current.reason == TIMED_OUT:
        return conds  # a reported lack of progress is not overwritten by a pause
    paused_cond = current is not None and current.reason == PAUSED
    if d.spec.paused and not paused_cond:
        return set_condition(conds, condition(PROGRESSING, "Unknown", PAUSED, "Deployment is paused", now))
    if not d.spec.paused and paused_cond:
        return set_condition(conds, condition(PROGRESSING, "Unknown", RESUMED, "Deployment is resumed", now))
    return conds


def calculate_status(d: Deployment, strategy: Strategy, all_rs: list[RS], new: RS | None,
                     conds: list[DeploymentCondition], collision_count: int | None,
                     now: float) -> DeploymentStatus:
    """calculateStatus: counts over every ReplicaSet of the Deployment, and Available
    when at least replicas - maxUnavailable pods are available."""
    available = sum(r.available for r in all_rs)
    total = sum(r.replicas for r in all_rs)
    desired = d.spec.replicas
    if available >= desired - strategy.unavailable(desired):
        avail = condition(AVAILABLE, "True", MIN_AVAILABLE, "Deployment has minimum availability.", now)
    else:
        avail = condition(AVAILABLE, "False", MIN_UNAVAILABLE,
                          "Deployment does not have minimum availability.", now)
    return DeploymentStatus(
        observed_generation=d.metadata.generation,
        replicas=sum(r.status_replicas for r in all_rs),
        updated_replicas=new.status_replicas if new is not None else 0,
        ready_replicas=sum(r.ready for r in all_rs),
        available_replicas=available,
        unavailable_replicas=max(total - available, 0),
        collision_count=collision_count,
        conditions=set_condition(list(conds), avail))


def complete(d: Deployment, st: DeploymentStatus) -> bool:
    """DeploymentComplete: every replica updated and available, the spec observed."""
    n = d.spec.replicas
    return (st.updated_replicas == n and st.replicas == n and st.available_replicas == n
            and st.observed_generation >= d.metadata.generation)


def progressed(old: DeploymentStatus, new: DeploymentStatus) -> bool:
    """DeploymentProgressing: more updated, fewer old, more ready or more available."""
    return (new.updated_replicas > old.updated_replicas
            or new.replicas - new.updated_replicas < old.replicas - old.updated_replicas
            or new.ready_replicas > old.ready_replicas
            or new.available_replicas > old.available_replicas)


def timed_out(d: Deployment, st: DeploymentStatus, now: float) -> bool:
    """DeploymentTimedOut: no progress for progressDeadlineSeconds since the last one."""
    if not has_deadline(d):
        return False
    cond = get_condition(st.conditions, PROGRESSING)
    if cond is None or cond.reason == NEW_RS_AVAILABLE:
        return False
    if cond.reason == TIMED_OUT:
        return True
    since = parse_time(cond.last_update_time)
    return since is not None and since + d.spec.progress_deadline_seconds < now


@dataclass(frozen=True)
class RolloutStatus:
    status: DeploymentStatus
    recheck_after: float | None  # seconds until the progress deadline should be looked at


def rollout_status(d: Deployment, strategy: Strategy, all_rs: list[RS], new: RS | None,
                   conds: list[DeploymentCondition], collision_count: int | None,
                   now: float) -> RolloutStatus:
    """syncRolloutStatus: the status plus Progressing, which says the rollout completed
    (NewReplicaSetAvailable), made progress (ReplicaSetUpdated) or missed its deadline
    (ProgressDeadlineExceeded). `conds` are the conditions as this sync left them."""
    st = calculate_status(d, strategy, all_rs, new, conds, collision_count, now)
    name = new.name if new is not None else None
    what = f'ReplicaSet "{name}"' if name else f'Deployment "{d.metadata.name}"'
    current = get_condition(conds, PROGRESSING)
    if not has_deadline(d):
        st = msgspec.structs.replace(st, conditions=remove_condition(st.conditions, PROGRESSING))
    already_complete = (st.replicas == st.updated_replicas and current is not None
                        and current.reason == NEW_RS_AVAILABLE)
    if has_deadline(d) and not already_complete:
        conditions = st.conditions
        if complete(d, st):
            conditions = set_condition(conditions, condition(
                PROGRESSING, "True", NEW_RS_AVAILABLE, f"{what} has successfully progressed.", now))
        elif progressed(d.status, st):
            cond = condition(PROGRESSING, "True", RS_UPDATED, f"{what} is progressing.", now)
            # Progress moves lastUpdateTime even with the same reason (the deadline restarts).
            if current is not None:
                if current.status == "True":
                    cond = msgspec.structs.replace(cond, last_transition_time=current.last_transition_time)
                conditions = remove_condition(conditions, PROGRESSING)
            conditions = set_condition(conditions, cond)
        elif timed_out(d, st, now):
            conditions = set_condition(conditions, condition(
                PROGRESSING, "False", TIMED_OUT, f"{what} has timed out progressing.", now))
        st = msgspec.structs.replace(st, conditions=conditions)
    return RolloutStatus(st, _recheck_after(d, st, now))


def _recheck_after(d: Deployment, st: DeploymentStatus, now: float) -> float | None:
    """requeueStuckDeployment: with no event to come, look again at the deadline."""
    cond = get_condition(d.status.conditions, PROGRESSING)
    if not has_deadline(d) or cond is None or complete(d, st) or cond.reason == TIMED_OUT:
        return None
    since = parse_time(cond.last_update_time)
    if since is None:
        return None
    return max(since + d.spec.progress_deadline_seconds - now, 0.0) + 1.0


def status_json(st: DeploymentStatus) -> dict[str, Any]:
    """The status as the status subresource takes it, every count explicit (a merge patch
    that omits a zero would leave the old value)."""
    out: dict[str, Any] = {
        "observedGeneration": st.observed_generation, "replicas": st.replicas,
        "updatedReplicas": st.updated_replicas, "readyReplicas": st.ready_replicas,
        "availableReplicas": st.available_replicas, "unavailableReplicas": st.unavailable_replicas,
        "conditions": [msgspec.to_builtins(c) for c in st.conditions]}
    if st.collision_count is not None:
        out["collisionCount"] = st.collision_count
    return out
