"""Data models of the HyperSDK REST client: the classes, fields, defaults and enum values of the
original HyperSDK Python SDK (JobDefinition, Job, JobProgress, ScheduledJob, Webhook, ...), so that
scripts written for it build and read them unchanged.

Differences, all additive:
- from_dict() ignores keys it does not model (hypervisord adds fields such as `id`); the keys a
  JobDefinition, ExportOptions, Job or JobResult does not model are kept in `.extra`, and
  to_dict() sends them back, so a definition read from the daemon survives a round trip.
- Enums accept values they do not list (a newer daemon's format or export method): the value
  becomes a member of its own, equal to the string, instead of a ValueError.
- Times are parsed from RFC 3339 with or without fractions or a zone, on every Python >= 3.9.
- Fields the daemon sends that the old models lacked are optional attributes at the end, so
  positional construction as in the old SDK still works.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from enum import Enum
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

__all__ = [
    "JobStatus", "ExportFormat", "ExportMethod", "VCenterConfig", "ExportOptions", "JobDefinition",
    "JobProgress", "JobResult", "Job", "ScheduledJob", "Webhook", "DaemonStatus", "CarbonForecast",
    "CarbonStatus", "CarbonReport", "CarbonZone", "CarbonEstimate", "parse_time",
]


class _OpenStrEnum(str, Enum):
    """A str enum that also takes values it does not list (matched case-insensitively first)."""

    @classmethod
    def _missing_(cls, value: object) -> Any:
        if not isinstance(value, str):
            return None
        for member in cls:
            if member.value == value.lower():
                return member
        pseudo = str.__new__(cls, value)
        pseudo._name_ = re.sub(r"\W", "_", value.upper()) or "EMPTY"
        pseudo._value_ = value
        return pseudo


class JobStatus(_OpenStrEnum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class ExportFormat(_OpenStrEnum):
    QCOW2 = "qcow2"
    RAW = "raw"
    VMDK = "vmdk"
    OVA = "ova"
    OVF = "ovf"
    # Formats hypervisord writes that the old SDK did not list.
    VHD = "vhd"
    VHDX = "vhdx"
    VDI = "vdi"


class ExportMethod(_OpenStrEnum):
    CTL = "ctl"
    GOVC = "govc"
    OVFTOOL = "ovftool"
    WEB = "web"
    AUTO = ""


_TIME = re.compile(r"(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}(?::\d{2})?)(?:[.,](\d+))?\s*([Zz]|[+-]\d{2}(?::?\d{2})?)?")


def parse_time(value: Any) -> Optional[datetime]:
    """An RFC 3339 / ISO 8601 time ("2026-12-07T10:00:00Z", with or without fractions or a zone),
    a datetime, or Unix seconds, as a datetime (aware when the text names a zone). None and ""
    give None; anything else is a ValueError."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return datetime.fromtimestamp(float(value), tz=timezone.utc)
    if not isinstance(value, str):
        raise ValueError(f"not a time: {value!r}")
    m = _TIME.fullmatch(value.strip())
    if not m:
        raise ValueError(f"not an RFC 3339 time: {value!r}")
    day, clock, fraction, zone = m.groups()
    if len(clock) == 5:
        clock += ":00"
    text = f"{day}T{clock}"
    if fraction:
        text += "." + (fraction + "000000")[:6]
    if zone in ("Z", "z"):
        text += "+00:00"
    elif zone:
        digits = zone[1:].replace(":", "")
        text += f"{zone[0]}{digits[:2]}:{(digits[2:] or '00')}"
    return datetime.fromisoformat(text)


def _time_text(value: datetime) -> str:
    """RFC 3339, with "Z" for UTC."""
    if value.tzinfo is not None and value.utcoffset() == timedelta(0):
        return value.replace(tzinfo=None).isoformat() + "Z"
    return value.isoformat()


def _required_time(data: Mapping[str, Any], key: str, model: str) -> datetime:
    value = parse_time(_required(data, key, model))
    if value is None:
        raise ValueError(f"{model}: the response has an empty {key!r}")
    return value


def _value(member: Any) -> Any:
    """The wire value of an enum member (or of a plain string given instead)."""
    return member.value if isinstance(member, Enum) else member


def _required(data: Mapping[str, Any], key: str, model: str) -> Any:
    if key not in data or data[key] is None:
        raise ValueError(f"{model}: the response has no {key!r}")
    return data[key]


def _known(model: Any) -> List[str]:
    return [f.name for f in dataclasses.fields(model) if f.name != "extra"]


def _unmodelled(data: Mapping[str, Any], model: Any, also: Tuple[str, ...] = ()) -> Dict[str, Any]:
    names = set(_known(model)) | set(also)
    return {k: v for k, v in data.items() if k not in names}


def _as_mapping(data: Any, model: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise ValueError(f"{model}: expected a JSON object, got {type(data).__name__}")
    return data


@dataclass
class VCenterConfig:
    """vCenter / ESXi connection: server is a host name or URL."""
    server: str
    username: str
    password: str
    insecure: bool = False

    def to_dict(self) -> Dict[str, Any]:
        """{server, username, password, insecure}; an empty password (a configuration read back
        from the daemon, which never shows it) is left out rather than sent as ""."""
        data = dataclasses.asdict(self)
        if not self.password:
            del data["password"]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "VCenterConfig":
        data = _as_mapping(data, "VCenterConfig")
        return cls(server=data.get("server") or "", username=data.get("username") or "",
                   password=data.get("password") or "", insecure=bool(data.get("insecure", False)))


@dataclass
class ExportOptions:
    """Export options (JobDefinition.options). Keys not modelled here go in `extra`."""
    parallel_downloads: int = 4
    remove_cdrom: bool = False
    show_individual_progress: bool = False
    enable_pipeline: bool = False
    hyper2kvm_path: Optional[str] = None
    pipeline_inspect: bool = False
    pipeline_fix: bool = False
    pipeline_convert: bool = False
    pipeline_validate: bool = False
    pipeline_compress: bool = False
    compress_level: int = 6
    libvirt_integration: bool = False
    libvirt_uri: Optional[str] = None
    libvirt_autostart: bool = False
    libvirt_bridge: Optional[str] = None
    libvirt_pool: Optional[str] = None
    shutdown_vm: Optional[bool] = None
    extra: Dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> Dict[str, Any]:
        data = dict(self.extra)
        data.update({k: getattr(self, k) for k in _known(self) if getattr(self, k) is not None})
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ExportOptions":
        data = _as_mapping(data, "ExportOptions")
        known = {k: data[k] for k in _known(cls) if k in data and data[k] is not None}
        return cls(**known, extra=_unmodelled(data, cls))


@dataclass
class JobDefinition:
    """A VM export job, as POST /jobs/submit takes it. The fields up to created_at are the old
    SDK's, in its order; the later ones are hypervisord's additions."""
    vm_path: str
    name: Optional[str] = None
    id: Optional[str] = None
    output_path: Optional[str] = None
    output_dir: Optional[str] = None
    vcenter_url: Optional[str] = None
    vcenter: Optional[VCenterConfig] = None
    username: Optional[str] = None
    datacenter: Optional[str] = None
    format: Union[ExportFormat, str] = ExportFormat.OVF
    export_method: Union[ExportMethod, str] = ExportMethod.AUTO
    method: Optional[str] = None
    compress: bool = False
    thin: bool = False
    insecure: bool = False
    options: Optional[ExportOptions] = None
    created_at: Optional[datetime] = None
    # hypervisord's additions
    password: Optional[str] = None
    provider: Optional[str] = None
    priority: Optional[int] = None
    depends_on: Optional[List[str]] = None
    max_retries: Optional[int] = None
    time_window: Optional[str] = None
    hyper2kvm_integration: Optional[Dict[str, Any]] = None
    metadata: Optional[Dict[str, Any]] = None
    extra: Dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> Dict[str, Any]:
        """The request body, with the keys the old SDK sent (vm_path; name, id, paths, vCenter and
        enum values when set; compress, thin and insecure always), then the additions that are set
        and the unmodelled keys of `extra`."""
        data: Dict[str, Any] = dict(self.extra)
        data["vm_path"] = self.vm_path
        for key in ("name", "id", "output_path", "output_dir", "vcenter_url"):
            if getattr(self, key):
                data[key] = getattr(self, key)
        if self.vcenter:
            data["vcenter"] = self.vcenter.to_dict() if isinstance(self.vcenter, VCenterConfig) else dict(self.vcenter)
        for key in ("username", "datacenter"):
            if getattr(self, key):
                data[key] = getattr(self, key)
        if self.format:
            data["format"] = ExportFormat(_value(self.format)).value
        if self.export_method:
            data["export_method"] = ExportMethod(_value(self.export_method)).value
        if self.method:
            data["method"] = self.method
        data["compress"] = self.compress
        data["thin"] = self.thin
        data["insecure"] = self.insecure
        if self.options:
            data["options"] = self.options.to_dict() if isinstance(self.options, ExportOptions) else dict(self.options)
        if self.created_at:
            data["created_at"] = _time_text(self.created_at) if isinstance(self.created_at, datetime) else self.created_at
        for key in ("password", "provider", "priority", "depends_on", "max_retries", "time_window",
                    "hyper2kvm_integration", "metadata"):
            if getattr(self, key) is not None:
                data[key] = getattr(self, key)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "JobDefinition":
        data = _as_mapping(data, "JobDefinition")
        vcenter = data.get("vcenter")
        options = data.get("options")
        return cls(
            vm_path=data.get("vm_path") or data.get("vm_identifier") or "",
            name=data.get("name"),
            id=data.get("id"),
            output_path=data.get("output_path"),
            output_dir=data.get("output_dir"),
            vcenter_url=data.get("vcenter_url"),
            vcenter=VCenterConfig.from_dict(vcenter) if isinstance(vcenter, Mapping) else None,
            username=data.get("username"),
            datacenter=data.get("datacenter"),
            format=ExportFormat(data.get("format") or "ovf"),
            export_method=ExportMethod(data.get("export_method") or ""),
            method=data.get("method"),
            compress=bool(data.get("compress", False)),
            thin=bool(data.get("thin", False)),
            insecure=bool(data.get("insecure", False)),
            options=ExportOptions.from_dict(options) if isinstance(options, Mapping) else None,
            created_at=parse_time(data.get("created_at")),
            password=data.get("password"),
            provider=data.get("provider"),
            priority=data.get("priority"),
            depends_on=data.get("depends_on"),
            max_retries=data.get("max_retries"),
            time_window=data.get("time_window"),
            hyper2kvm_integration=data.get("hyper2kvm_integration"),
            metadata=data.get("metadata"),
            # vm_identifier became vm_path when there was no vm_path: not sent twice.
            extra=_unmodelled(data, cls, also=() if data.get("vm_path") else ("vm_identifier",)),
        )


@dataclass
class JobProgress:
    """GET /jobs/progress/{id}, and Job.progress."""
    phase: str = ""
    current_file: Optional[str] = None
    current_step: Optional[str] = None
    files_downloaded: int = 0
    total_files: int = 0
    bytes_downloaded: int = 0
    bytes_transferred: int = 0
    total_bytes: int = 0
    percent_complete: float = 0.0
    estimated_remaining: Optional[str] = None
    export_method: Optional[str] = None
    # hypervisord's additions
    job_id: Optional[str] = None
    status: Optional[str] = None
    percentage: Optional[float] = None
    transfer_rate_mbps: Optional[float] = None
    speed_mbps: Optional[float] = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "JobProgress":
        data = _as_mapping(data, "JobProgress")
        values = {k: data[k] for k in _known(cls) if k in data and data[k] is not None}
        return cls(**values)


@dataclass
class JobResult:
    """Job.result: what an export produced. Every field has a default, since jobs of other
    operations have other results (kept in `extra`)."""
    vm_name: str = ""
    output_dir: str = ""
    ovf_path: str = ""
    files: List[str] = field(default_factory=list)
    total_size: int = 0
    duration: Any = 0
    success: bool = False
    export_method: Optional[str] = None
    error: Optional[str] = None
    output_files: Optional[List[str]] = None
    extra: Dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "JobResult":
        data = _as_mapping(data, "JobResult")
        values = {k: data[k] for k in _known(cls) if k in data and data[k] is not None}
        return cls(**values, extra=_unmodelled(data, cls))


@dataclass
class Job:
    """A job as GET /jobs/{id} and /jobs/query answer it."""
    definition: JobDefinition
    status: JobStatus
    updated_at: datetime
    progress: Optional[JobProgress] = None
    result: Optional[JobResult] = None
    error: Optional[str] = None
    started_at: Optional[datetime] = None
    completed_at: Optional[datetime] = None
    # hypervisord's additions
    id: Optional[str] = None
    name: Optional[str] = None
    operation: Optional[str] = None
    created_at: Optional[datetime] = None
    priority: Optional[int] = None
    depends_on: List[str] = field(default_factory=list)
    retries: int = 0
    schedule_id: Optional[str] = None
    extra: Dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Job":
        data = _as_mapping(data, "Job")
        definition = JobDefinition.from_dict(data.get("definition") or {})
        # The old SDK's scripts name a job by definition.id.
        if not definition.id and data.get("id"):
            definition.id = data["id"]
        progress = data.get("progress")
        result = data.get("result")
        return cls(
            definition=definition,
            status=JobStatus(_required(data, "status", "Job")),
            updated_at=_required_time(data, "updated_at", "Job"),
            progress=JobProgress.from_dict(progress) if isinstance(progress, Mapping) and progress else None,
            result=JobResult.from_dict(result) if isinstance(result, Mapping) and result else None,
            error=data.get("error") or None,
            started_at=parse_time(data.get("started_at")),
            completed_at=parse_time(data.get("completed_at")),
            id=data.get("id") or definition.id,
            name=data.get("name"),
            operation=data.get("operation"),
            created_at=parse_time(data.get("created_at")),
            priority=data.get("priority"),
            depends_on=list(data.get("depends_on") or []),
            retries=data.get("retries") or 0,
            schedule_id=data.get("schedule_id"),
            extra=_unmodelled(data, cls),
        )


@dataclass
class ScheduledJob:
    """A schedule: job_template runs on the cron expression `schedule`."""
    name: str
    schedule: str
    job_template: JobDefinition
    id: Optional[str] = None
    description: Optional[str] = None
    enabled: bool = True
    created_at: Optional[datetime] = None
    updated_at: Optional[datetime] = None
    next_run: Optional[datetime] = None
    last_run: Optional[datetime] = None
    run_count: int = 0
    tags: List[str] = field(default_factory=list)
    # hypervisord's additions
    priority: Optional[int] = None
    time_window: Optional[str] = None
    extra: Dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> Dict[str, Any]:
        template = self.job_template
        data: Dict[str, Any] = dict(self.extra)
        data.update({
            "name": self.name,
            "schedule": self.schedule,
            "job_template": template.to_dict() if isinstance(template, JobDefinition) else dict(template),
            "enabled": self.enabled,
            "run_count": self.run_count,
        })
        if self.id:
            data["id"] = self.id
        if self.description:
            data["description"] = self.description
        if self.tags:
            data["tags"] = list(self.tags)
        if self.priority is not None:
            data["priority"] = self.priority
        if self.time_window:
            data["time_window"] = self.time_window
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ScheduledJob":
        data = _as_mapping(data, "ScheduledJob")
        template = data.get("job_template") or data.get("job_definition") or {}
        cron = data.get("schedule") or data.get("cron")
        if not cron:
            raise ValueError("ScheduledJob: the response has no 'schedule'")
        return cls(
            name=_required(data, "name", "ScheduledJob"),
            schedule=cron,
            job_template=JobDefinition.from_dict(template),
            id=data.get("id"),
            description=data.get("description"),
            enabled=bool(data.get("enabled", True)),
            created_at=parse_time(data.get("created_at")),
            updated_at=parse_time(data.get("updated_at")),
            next_run=parse_time(data.get("next_run")),
            last_run=parse_time(data.get("last_run")),
            run_count=data.get("run_count") or 0,
            tags=list(data.get("tags") or []),
            priority=data.get("priority"),
            time_window=data.get("time_window"),
            extra=_unmodelled(data, cls, also=("cron", "job_definition")),
        )


@dataclass
class Webhook:
    """A webhook: POSTs the named events to url. id and enabled come from the daemon."""
    url: str
    events: List[str] = field(default_factory=lambda: ["job_completed", "job_failed"])
    headers: Dict[str, str] = field(default_factory=dict)
    # hypervisord's additions
    id: Optional[str] = None
    enabled: Optional[bool] = None
    secret: Optional[str] = None

    def to_dict(self) -> Dict[str, Any]:
        data: Dict[str, Any] = {"url": self.url, "events": list(self.events), "headers": dict(self.headers)}
        if self.secret:
            data["secret"] = self.secret
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Webhook":
        data = _as_mapping(data, "Webhook")
        events = data.get("events")
        return cls(
            url=_required(data, "url", "Webhook"),
            events=list(events) if events is not None else ["job_completed", "job_failed"],
            headers=dict(data.get("headers") or {}),
            id=data.get("id"),
            enabled=data.get("enabled"),
        )


@dataclass
class DaemonStatus:
    """GET /status."""
    version: str
    uptime: str
    total_jobs: int
    running_jobs: int
    completed_jobs: int
    failed_jobs: int
    cancelled_jobs: int
    timestamp: datetime
    # hypervisord's additions
    pending_jobs: int = 0
    uptime_seconds: Optional[float] = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "DaemonStatus":
        data = _as_mapping(data, "DaemonStatus")
        return cls(
            version=_required(data, "version", "DaemonStatus"),
            uptime=str(_required(data, "uptime", "DaemonStatus")),
            total_jobs=_required(data, "total_jobs", "DaemonStatus"),
            running_jobs=_required(data, "running_jobs", "DaemonStatus"),
            completed_jobs=_required(data, "completed_jobs", "DaemonStatus"),
            failed_jobs=_required(data, "failed_jobs", "DaemonStatus"),
            cancelled_jobs=_required(data, "cancelled_jobs", "DaemonStatus"),
            timestamp=_required_time(data, "timestamp", "DaemonStatus"),
            pending_jobs=data.get("pending_jobs") or 0,
            uptime_seconds=data.get("uptime_seconds"),
        )


# ---- carbon-aware scheduling (the old SDK's models; hypervisord serves no /carbon routes) -------

@dataclass
class CarbonForecast:
    time: Optional[datetime]
    intensity_gco2_kwh: float
    quality: str

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "CarbonForecast":
        data = _as_mapping(data, "CarbonForecast")
        return cls(time=parse_time(data.get("time")), intensity_gco2_kwh=data.get("intensity_gco2_kwh", 0.0),
                   quality=data.get("quality", ""))


@dataclass
class CarbonStatus:
    zone: str
    current_intensity: float
    renewable_percent: float
    optimal_for_backup: bool
    next_optimal_time: Optional[datetime]
    forecast: List[CarbonForecast]
    reasoning: str
    quality: str
    timestamp: Optional[datetime]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "CarbonStatus":
        data = _as_mapping(data, "CarbonStatus")
        return cls(
            zone=data.get("zone", ""),
            current_intensity=data.get("current_intensity", 0.0),
            renewable_percent=data.get("renewable_percent", 0.0),
            optimal_for_backup=bool(data.get("optimal_for_backup", False)),
            next_optimal_time=parse_time(data.get("next_optimal_time")),
            forecast=[CarbonForecast.from_dict(f) for f in data.get("forecast_next_4h") or data.get("forecast") or []],
            reasoning=data.get("reasoning", ""),
            quality=data.get("quality", ""),
            timestamp=parse_time(data.get("timestamp")),
        )


@dataclass
class CarbonReport:
    operation_id: str
    start_time: Optional[datetime]
    end_time: Optional[datetime]
    duration_hours: float
    data_size_gb: float
    energy_kwh: float
    carbon_intensity_gco2_kwh: float
    carbon_emissions_kg_co2: float
    savings_vs_worst_kg_co2: float
    renewable_percent: float
    equivalent: str

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "CarbonReport":
        data = _as_mapping(data, "CarbonReport")
        return cls(
            operation_id=data.get("operation_id", ""),
            start_time=parse_time(data.get("start_time")),
            end_time=parse_time(data.get("end_time")),
            duration_hours=data.get("duration_hours", 0.0),
            data_size_gb=data.get("data_size_gb", 0.0),
            energy_kwh=data.get("energy_kwh", 0.0),
            carbon_intensity_gco2_kwh=data.get("carbon_intensity_gco2_kwh", 0.0),
            carbon_emissions_kg_co2=data.get("carbon_emissions_kg_co2", 0.0),
            savings_vs_worst_kg_co2=data.get("savings_vs_worst_kg_co2", 0.0),
            renewable_percent=data.get("renewable_percent", 0.0),
            equivalent=data.get("equivalent", ""),
        )


@dataclass
class CarbonZone:
    id: str
    name: str
    region: str
    description: str
    typical_intensity: float

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "CarbonZone":
        data = _as_mapping(data, "CarbonZone")
        return cls(id=data.get("id", ""), name=data.get("name", ""), region=data.get("region", ""),
                   description=data.get("description", ""), typical_intensity=data.get("typical_intensity", 0.0))


@dataclass
class CarbonEstimate:
    current_intensity_gco2_kwh: float
    current_emissions_kg_co2: float
    best_intensity_gco2_kwh: float
    best_emissions_kg_co2: float
    best_time: Optional[datetime]
    savings_kg_co2: float
    savings_percent: float
    recommendation: str
    delay_minutes: Optional[float]
    forecast: List[CarbonForecast]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "CarbonEstimate":
        data = _as_mapping(data, "CarbonEstimate")
        return cls(
            current_intensity_gco2_kwh=data.get("current_intensity_gco2_kwh", 0.0),
            current_emissions_kg_co2=data.get("current_emissions_kg_co2", 0.0),
            best_intensity_gco2_kwh=data.get("best_intensity_gco2_kwh", 0.0),
            best_emissions_kg_co2=data.get("best_emissions_kg_co2", 0.0),
            best_time=parse_time(data.get("best_time")),
            savings_kg_co2=data.get("savings_kg_co2", 0.0),
            savings_percent=data.get("savings_percent", 0.0),
            recommendation=data.get("recommendation", ""),
            delay_minutes=data.get("delay_minutes"),
            forecast=[CarbonForecast.from_dict(f) for f in data.get("forecast") or []],
        )
