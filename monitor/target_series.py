"""The per-target series of /metrics, kept as pre-rendered lines of the text format.

At 50,000 targets these are about 400,000 series. Held as prometheus-client children, every
scrape walked each of them, took its lock and formatted its value under the GIL: 2.9 to 3.2 s
per scrape on this 2-core box, with the event loop stalled up to 0.38 s meanwhile (probes due
then started late). Here a series' line is formatted when its value changes (by the probe
result that changed it: a few short string formats), and a scrape joins the lines it holds,
one ``str.join`` per family: tens of milliseconds at 50,000 targets.

Names, types, help texts and labels are the ones prometheus-client rendered before (see
CONTRACT.md); values are formatted by its own ``floatToGoString``. The lines are joined on the
event loop (``text``): they change only there, so a scrape sees one consistent moment.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client.utils import floatToGoString

# A value as prometheus-client writes it (Go's float format: 1.0, 1.7e+09, +Inf).
go_value: Callable[[float], str] = floatToGoString

# name in the exposition, type, help: in the order they are rendered.
FAMILIES = (
    ("watchdesk_probe_success", "gauge", "1 if the last probe succeeded"),
    ("watchdesk_probe_duration_seconds", "gauge", "Duration of the last probe"),
    ("watchdesk_probes_total", "counter", "Probes run"),
    (
        "watchdesk_consecutive_failures",
        "gauge",
        "Consecutive failed probes: the counter that opens incidents",
    ),
    ("watchdesk_target_up", "gauge", "1 up, 0 down (after thresholds); absent while unknown"),
    (
        "watchdesk_tls_cert_expiry_timestamp_seconds",
        "gauge",
        "Earliest certificate expiry seen by the last probe",
    ),
    (
        "watchdesk_probes_skipped_total",
        "counter",
        "Scheduled probes not started because the previous one of that target still ran",
    ),
    ("watchdesk_target_info", "gauge", "Always 1; join on target to group by customer"),
)
(SUCCESS, DURATION, PROBES, FAILURES, UP, TLS, SKIPPED, INFO) = (f[0] for f in FAMILIES)


def label_value(text: str) -> str:
    """A label value escaped as the text format wants it."""
    if "\\" not in text and "\n" not in text and '"' not in text:
        return text  # nearly every name: no copies
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


@dataclass(slots=True)
class _Target:
    kind: str
    customer: str
    # The label sets, rendered once (names sorted, as prometheus-client wrote them):
    # {target="..."}, {kind="...",target="..."}, and the probes' two with result="...".
    own: str
    with_kind: str
    success_labels: str
    failure_labels: str
    ok: int = 0
    failed: int = 0
    skipped: int = 0


class TargetSeries:
    def __init__(self) -> None:
        self._targets: dict[str, _Target] = {}
        # family -> target -> line(s): what a scrape joins.
        self._lines: dict[str, dict[str, str]] = {name: {} for name, _, _ in FAMILIES}
        self._headers = {
            name: f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n"
            for name, kind, help_text in FAMILIES
        }

    def __len__(self) -> int:
        return len(self._targets)

    def __contains__(self, name: object) -> bool:
        return name in self._targets

    def add(self, name: str, kind: str, customer: str) -> None:
        """A configured target; one that is already here with the same kind and customer keeps
        its series and counters (a reload does not reset them)."""
        known = self._targets.get(name)
        if known is not None and (known.kind, known.customer) == (kind, customer):
            return
        self.remove(name)
        quoted, kind_label = f'target="{label_value(name)}"', f'kind="{label_value(kind)}"'
        own, with_kind = f"{{{quoted}}}", f"{{{kind_label},{quoted}}}"
        succeeded = f'{{{kind_label},result="success",{quoted}}}'
        failed = f'{{{kind_label},result="failure",{quoted}}}'
        target = _Target(kind, customer, own, with_kind, succeeded, failed)
        self._targets[name] = target
        info = f'{{customer="{label_value(customer)}",{kind_label},{quoted}}}'
        # As prometheus-client had them: every series but up, TLS and skips from the start.
        self._set(name, SUCCESS, f"{SUCCESS}{with_kind} 0.0\n")
        self._set(name, DURATION, f"{DURATION}{with_kind} 0.0\n")
        self._set(name, PROBES, f"{PROBES}{succeeded} 0.0\n{PROBES}{failed} 0.0\n")
        self._set(name, FAILURES, f"{FAILURES}{own} 0.0\n")
        self._set(name, INFO, f"{INFO}{info} 1.0\n")

    def remove(self, name: str) -> None:
        if self._targets.pop(name, None) is not None:
            for lines in self._lines.values():
                lines.pop(name, None)

    def record(
        self, name: str, ok: bool, duration: float, failures: int, tls_expiry: float | None
    ) -> None:
        """One probe's result."""
        target = self._targets.get(name)
        if target is None:
            return
        if ok:
            target.ok += 1
        else:
            target.failed += 1
        labels = target.with_kind
        self._set(name, SUCCESS, f"{SUCCESS}{labels} {'1.0' if ok else '0.0'}\n")
        self._set(name, DURATION, f"{DURATION}{labels} {go_value(duration)}\n")
        self._set_probes(name, target)
        self.consecutive_failures(name, failures)
        if tls_expiry is not None:
            self._set(name, TLS, f"{TLS}{target.own} {go_value(tls_expiry)}\n")

    def consecutive_failures(self, name: str, count: int) -> None:
        target = self._targets.get(name)
        if target is not None:
            self._set(name, FAILURES, f"{FAILURES}{target.own} {go_value(count)}\n")

    def up(self, name: str, status: str) -> None:
        """1 up, 0 down; no series while unknown (not a fake 0 or 1)."""
        target = self._targets.get(name)
        if target is None:
            return
        if status == "unknown":
            self._lines[UP].pop(name, None)
        else:
            self._set(name, UP, f"{UP}{target.own} {'1.0' if status == 'up' else '0.0'}\n")

    def skipped(self, name: str) -> None:
        target = self._targets.get(name)
        if target is not None:
            target.skipped += 1
            line = f"{SKIPPED}{target.own} {go_value(target.skipped)}\n"
            self._set(name, SKIPPED, line)

    def lines_of(self, name: str) -> tuple[str, ...]:
        """The target's rendered lines, family by family (what a scrape shows of it)."""
        return tuple(lines[name] for lines in self._lines.values() if name in lines)

    def text(self) -> str:
        """Every family with its lines (call on the event loop, where they change)."""
        return "".join(
            self._headers[family] + "".join(lines.values()) for family, lines in self._lines.items()
        )

    def _set_probes(self, name: str, target: _Target) -> None:
        self._set(
            name,
            PROBES,
            f"{PROBES}{target.success_labels} {go_value(target.ok)}\n"
            f"{PROBES}{target.failure_labels} {go_value(target.failed)}\n",
        )

    def _set(self, name: str, family: str, line: str) -> None:
        self._lines[family][name] = line
