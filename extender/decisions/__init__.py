"""Decision records: one JSON-able dict per verb call (what was asked, what was answered, why),
logged as one JSON line on logger ``extender.decisions`` and handed to observers (metrics,
status page, events). The record's keys are a contract between areas: see
:mod:`extender.decisions.record`."""

from extender.decisions.log import DecisionLog, DecisionLogOptions, Observer
from extender.decisions.record import Record

__all__ = ["DecisionLog", "DecisionLogOptions", "Observer", "Record"]
