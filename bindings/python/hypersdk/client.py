"""HyperSDK: the client of the original HyperSDK Python SDK (same class, methods, arguments and
return types), talking to hypervisord, or, without a URL, to the same service in this process.

    from hypersdk import HyperSDK, JobDefinition
    client = HyperSDK("http://localhost:8080", api_key="...")   # a hypervisord
    local = HyperSDK()                                           # in-process: no daemon, no auth,
                                                                 # jobs kept in memory
    job_id = client.submit_job(JobDefinition(vm_path="/DC0/vm/web", output_dir="/exports"))
    job = client.get_job(job_id)

Both modes run the same code: every method builds one request (method, path and query, JSON body,
headers) and hands it to a transport, urllib for a URL or the native service for none, which
answers (status, content type, body). Errors are mapped as the old SDK mapped them: 401 is an
AuthenticationError; a 404 is a JobNotFoundError (the job, schedule, webhook or VM named does not
exist); any other failure is an APIError. The old SDK's methods for routes hypervisord does not
serve (libvirt, cost, carbon, hyper2kvm conversion, advanced schedules, VM shutdown) are kept: they
send the request the old SDK sent, and the daemon's 404 becomes an APIError naming the route
(.route), as does any route the service answers with its router's "not found: <path>" or a 405.

Uses only the standard library (no `requests`).
"""
from __future__ import annotations

import http.client
import importlib
import json as _json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime
from types import TracebackType
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Type, TypeVar, Union

from .client_errors import (
    APIError,
    AuthenticationError,
    HyperSDKError,
    JobNotFoundError,
    ValidationError,
    WebSocketError,
)
from .client_models import (
    CarbonEstimate,
    CarbonForecast,
    CarbonReport,
    CarbonStatus,
    CarbonZone,
    DaemonStatus,
    ExportFormat,
    ExportMethod,
    ExportOptions,
    Job,
    JobDefinition,
    JobProgress,
    JobResult,
    JobStatus,
    ScheduledJob,
    VCenterConfig,
    Webhook,
)

__all__ = [
    "HyperSDK", "AsyncHyperSDK",
    "Job", "JobDefinition", "JobStatus", "JobProgress", "JobResult", "VCenterConfig", "ExportOptions",
    "ExportFormat", "ExportMethod", "ScheduledJob", "Webhook", "DaemonStatus",
    "CarbonStatus", "CarbonForecast", "CarbonReport", "CarbonZone", "CarbonEstimate",
    "HyperSDKError", "AuthenticationError", "JobNotFoundError", "APIError", "ValidationError", "WebSocketError",
]

# One answer of a transport: HTTP status, content type, body.
Answer = Tuple[int, str, bytes]
JobDefinitionLike = Union[JobDefinition, Mapping[str, Any]]
VCenterLike = Union[VCenterConfig, Mapping[str, Any]]
M = TypeVar("M")


class _HttpTransport:
    """Requests to a daemon at base_url with urllib (environment proxies apply, as with requests)."""

    def __init__(self, base_url: str, timeout: float, verify_ssl: bool) -> None:
        self.base_url = base_url
        self.timeout = timeout
        handlers: List[urllib.request.BaseHandler] = []
        if not verify_ssl:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            handlers.append(urllib.request.HTTPSHandler(context=context))
        self._opener = urllib.request.build_opener(*handlers)

    def send(self, method: str, target: str, body: Optional[bytes], headers: Dict[str, str]) -> Answer:
        request = urllib.request.Request(self.base_url + target, data=body, method=method, headers=headers)
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                return response.status, response.headers.get("Content-Type", ""), response.read()
        except urllib.error.HTTPError as e:
            try:
                data = e.read()
            finally:
                e.close()
            return e.code, (e.headers.get("Content-Type", "") if e.headers else ""), data
        except urllib.error.URLError as e:
            raise APIError(f"Request failed: {method} {self.base_url}{target}: {e.reason}") from e
        except (OSError, http.client.HTTPException) as e:
            raise APIError(f"Request failed: {method} {self.base_url}{target}: {e}") from e

    def close(self) -> None:
        pass


class _InProcessTransport:
    """Requests to the library's service in this process (in-memory database, no authentication):
    hypersdk._hypersdk._service_request(method, target, body, headers) -> (status, type, body)."""

    def __init__(self) -> None:
        native = importlib.import_module("._hypersdk", __package__)
        call = getattr(native, "_service_request", None)
        if call is None:
            raise HyperSDKError("this build of hypersdk has no in-process service "
                                "(hypersdk._hypersdk._service_request): give HyperSDK the daemon's URL")
        self._call: Callable[[str, str, bytes, Dict[str, str]], Tuple[int, str, bytes]] = call

    def send(self, method: str, target: str, body: Optional[bytes], headers: Dict[str, str]) -> Answer:
        status, content_type, data = self._call(method, target, body or b"", {k.lower(): v for k, v in headers.items()})
        return int(status), str(content_type or ""), bytes(data)

    def close(self) -> None:
        pass


def _quote(segment: str) -> str:
    """A path segment (a job, schedule or webhook id) with '/', '?' and the like escaped."""
    if not isinstance(segment, str) or not segment:
        raise ValidationError(f"expected a non-empty id, got {segment!r}")
    return urllib.parse.quote(segment, safe="")


def _decode(content_type: str, data: bytes) -> Any:
    """The body: JSON when it says so (or looks like it and says nothing else), else text; None when empty."""
    if not data:
        return None
    text = data.decode("utf-8", errors="replace")
    kind = content_type.split(";")[0].strip().lower()
    if "json" in kind or (not kind.startswith("text/") and text.lstrip()[:1] in ("{", "[")):
        try:
            return _json.loads(text)
        except ValueError:
            return text
    return text


def _error_message(payload: Any, status: int) -> str:
    if isinstance(payload, Mapping):
        for key in ("error", "message"):
            if isinstance(payload.get(key), str) and payload[key]:
                return str(payload[key])
        return _json.dumps(payload)
    if isinstance(payload, str) and payload.strip():
        return payload.strip()
    return http.client.responses.get(status, f"HTTP {status}")


def _submission_error(errors: Any) -> str:
    if isinstance(errors, list) and errors:
        first = errors[0]
        if isinstance(first, Mapping):
            return str(first.get("error") or first.get("message") or _json.dumps(first))
        return str(first)
    return "Unknown error"


def _definition_dict(job_def: JobDefinitionLike) -> Dict[str, Any]:
    if isinstance(job_def, JobDefinition):
        return job_def.to_dict()
    if isinstance(job_def, Mapping):
        return dict(job_def)
    raise ValidationError(f"a job definition is a JobDefinition or a dict, not {type(job_def).__name__}")


def _vcenter_dict(config: Optional[VCenterLike]) -> Optional[Dict[str, Any]]:
    if config is None:
        return None
    if isinstance(config, VCenterConfig):
        return config.to_dict()
    if isinstance(config, Mapping):
        return dict(config)
    raise ValidationError(f"a vCenter configuration is a VCenterConfig or a dict, not {type(config).__name__}")


class _Session:
    """What remains of the old SDK's requests.Session: `headers` sent with every request (the
    API key is one of them, as it was)."""

    def __init__(self) -> None:
        self.headers: Dict[str, str] = {}

    def close(self) -> None:
        pass


class HyperSDK:
    """Client of hypervisord's REST API, with the original HyperSDK SDK's methods.

    HyperSDK("http://host:8080", api_key=None, timeout=30, verify_ssl=True) talks HTTP(S) to a
    daemon (X-API-Key when api_key is given; Authorization: Bearer after login()). HyperSDK()
    runs every call in this process against an in-memory service, without a daemon.
    """

    def __init__(self, base_url: Optional[str] = None, api_key: Optional[str] = None, timeout: float = 30,
                 verify_ssl: bool = True) -> None:
        self.base_url: Optional[str] = base_url.rstrip("/") if base_url else None
        self.api_key = api_key
        self.timeout = timeout
        self.verify_ssl = verify_ssl
        self._token: Optional[str] = None
        self.session = _Session()
        if api_key:
            self.session.headers["X-API-Key"] = api_key
        self._transport: Union[_HttpTransport, _InProcessTransport]
        if self.base_url is None:
            self._transport = _InProcessTransport()
        else:
            if urllib.parse.urlsplit(self.base_url).scheme not in ("http", "https"):
                raise ValidationError(f"base_url must be an http:// or https:// URL, not {base_url!r}")
            self._transport = _HttpTransport(self.base_url, timeout, verify_ssl)

    @property
    def in_process(self) -> bool:
        """True when requests go to the service in this process (no base_url)."""
        return self.base_url is None

    @property
    def token(self) -> Optional[str]:
        """The session token of the last login(), or None."""
        return self._token

    # ---- the one request path --------------------------------------------------------------

    def _request(self, method: str, path: str, json: Any = None, params: Optional[Mapping[str, Any]] = None,
                 *, served: bool = True) -> Any:
        """Sends one request and returns the decoded answer (JSON, text, or None).

        Errors, as the old SDK mapped them: 401 is an AuthenticationError, 404 a JobNotFoundError
        (the job, schedule, webhook or VM named does not exist), anything else an APIError. A route
        the service does not serve (its router's "not found: <path>", a 405, or, for the old SDK's
        routes marked served=False, a 404/405/501) is an APIError naming the route in .route."""
        target = path
        if params:
            query = {k: ("true" if v is True else "false" if v is False else v) for k, v in params.items() if v is not None}
            if query:
                target += "?" + urllib.parse.urlencode(query, doseq=True)
        headers: Dict[str, str] = {"Accept": "application/json, text/plain;q=0.9, */*;q=0.1"}
        headers.update(self.session.headers)
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        body: Optional[bytes] = None
        if json is not None:
            body = _json.dumps(json).encode("utf-8")
            headers["Content-Type"] = "application/json"
        status, content_type, data = self._transport.send(method, target, body, headers)
        payload = _decode(content_type, data)
        if 200 <= status < 300:
            return payload
        route = f"{method} {path}"
        message = _error_message(payload, status)
        if status == 401:
            raise AuthenticationError(f"Authentication failed: {message}", status_code=status, response=payload)
        unrouted = status == 405 or (status == 404 and message == f"not found: {urllib.parse.unquote(path)}")
        if unrouted or (not served and status in (404, 405, 501)):
            raise APIError(f"{route} is not served by this HyperSDK service ({status}: {message})",
                           status_code=status, response=payload, route=route)
        if status == 404:
            raise JobNotFoundError(f"Resource not found: {path} ({message})", status_code=status, response=payload)
        raise APIError(f"API error: {message} ({route}: {status})", status_code=status, response=payload, route=route)

    def _object(self, method: str, path: str, json: Any = None, params: Optional[Mapping[str, Any]] = None,
                *, served: bool = True) -> Dict[str, Any]:
        answer = self._request(method, path, json, params, served=served)
        if not isinstance(answer, dict):
            raise APIError(f"unexpected answer to {method} {path}: expected a JSON object, got {answer!r:.200}",
                           response=answer, route=f"{method} {path}")
        return answer

    def _array(self, method: str, path: str, json: Any = None, params: Optional[Mapping[str, Any]] = None,
               *, key: Optional[str] = None, served: bool = True) -> List[Any]:
        answer = self._request(method, path, json, params, served=served)
        if key is not None and isinstance(answer, dict) and isinstance(answer.get(key), list):
            answer = answer[key]
        if not isinstance(answer, list):
            raise APIError(f"unexpected answer to {method} {path}: expected a JSON array, got {answer!r:.200}",
                           response=answer, route=f"{method} {path}")
        return answer

    @staticmethod
    def _model(parse: Callable[[Mapping[str, Any]], M], data: Any, route: str) -> M:
        try:
            return parse(data)
        except (ValueError, TypeError, KeyError) as e:
            raise APIError(f"unexpected answer to {route}: {e}", response=data, route=route) from e

    # ---- authentication ----------------------------------------------------------------------

    def login(self, username: str, password: str) -> str:
        """POST /api/login; later requests carry the token (Authorization: Bearer). Returns it."""
        answer = self._object("POST", "/api/login", json={"username": username, "password": password})
        token = answer.get("token")
        if not isinstance(token, str) or not token:
            raise AuthenticationError("Authentication failed: the login answer has no token", response=answer)
        self._token = token
        return token

    def logout(self) -> None:
        """POST /api/logout, then forget the token."""
        self._request("POST", "/api/logout")
        self._token = None

    # ---- health and status -------------------------------------------------------------------

    def health(self) -> Dict[str, Any]:
        """GET /health: {status, version, uptime, timestamp}."""
        return self._object("GET", "/health")

    def status(self) -> DaemonStatus:
        """GET /status as a DaemonStatus."""
        return self._model(DaemonStatus.from_dict, self._object("GET", "/status"), "GET /status")

    def capabilities(self) -> Dict[str, Any]:
        """GET /capabilities."""
        return self._object("GET", "/capabilities")

    # ---- jobs --------------------------------------------------------------------------------

    def submit_job(self, job_def: JobDefinitionLike) -> str:
        """POST /jobs/submit of one job (a JobDefinition or a dict); returns its id."""
        answer = self._object("POST", "/jobs/submit", json=_definition_dict(job_def))
        ids = answer.get("job_ids") or ([answer["job_id"]] if answer.get("job_id") else [])
        if not answer.get("accepted", len(ids)) or not ids:
            raise APIError(f"Job submission failed: {_submission_error(answer.get('errors'))}", response=answer,
                           route="POST /jobs/submit")
        return str(ids[0])

    def submit_jobs(self, job_defs: Sequence[JobDefinitionLike]) -> List[str]:
        """POST /jobs/submit of several jobs; returns the ids of those accepted."""
        answer = self._object("POST", "/jobs/submit", json=[_definition_dict(j) for j in job_defs])
        return [str(i) for i in answer.get("job_ids") or []]

    def get_job(self, job_id: str) -> Job:
        """GET /jobs/{id}; JobNotFoundError when there is no such job."""
        path = f"/jobs/{_quote(job_id)}"
        return self._model(Job.from_dict, self._object("GET", path), f"GET {path}")

    def query_jobs(self, job_ids: Optional[Sequence[str]] = None, status: Optional[Sequence[Union[JobStatus, str]]] = None,
                   all: bool = False, limit: Optional[int] = None) -> List[Job]:
        """POST /jobs/query: jobs by id and/or status (newest first)."""
        request: Dict[str, Any] = {}
        if job_ids:
            request["job_ids"] = list(job_ids)
        if status:
            request["status"] = [s.value if isinstance(s, JobStatus) else str(s) for s in status]
        if all:
            request["all"] = True
        if limit:
            request["limit"] = limit
        jobs = self._array("POST", "/jobs/query", json=request, key="jobs")
        return [self._model(Job.from_dict, j, "POST /jobs/query") for j in jobs]

    def list_jobs(self, all: bool = True) -> List[Job]:
        """GET /jobs/query[?all=true]."""
        jobs = self._array("GET", "/jobs/query", params={"all": "true"} if all else None, key="jobs")
        return [self._model(Job.from_dict, j, "GET /jobs/query") for j in jobs]

    def cancel_job(self, job_id: str) -> bool:
        """POST /jobs/cancel of one job: True when cancelled, False when the daemon lists it in
        neither list; APIError with the daemon's reason when it could not be cancelled."""
        answer = self._object("POST", "/jobs/cancel", json={"job_ids": [job_id]})
        if job_id in (answer.get("cancelled") or []):
            return True
        if job_id in (answer.get("failed") or []):
            reason = (answer.get("errors") or {}).get(job_id, "Unknown error")
            raise APIError(f"Failed to cancel job: {reason}", response=answer, route="POST /jobs/cancel")
        return False

    def cancel_jobs(self, job_ids: Sequence[str]) -> Dict[str, Any]:
        """POST /jobs/cancel: {cancelled: [...], failed: [...], errors: {id: reason}, timestamp}."""
        return self._object("POST", "/jobs/cancel", json={"job_ids": list(job_ids)})

    def get_job_progress(self, job_id: str) -> JobProgress:
        """GET /jobs/progress/{id} as a JobProgress."""
        path = f"/jobs/progress/{_quote(job_id)}"
        return self._model(JobProgress.from_dict, self._object("GET", path), f"GET {path}")

    def get_job_logs(self, job_id: str) -> str:
        """GET /jobs/logs/{id}: the job's log, one "<time> <LEVEL> <message>" line each. Any
        failure is an APIError("Failed to get logs: ..."), as in the old SDK."""
        path = f"/jobs/logs/{_quote(job_id)}"
        try:
            answer = self._request("GET", path)
        except APIError as e:
            raise APIError(f"Failed to get logs: {e}", status_code=e.status_code, response=e.response, route=e.route) from e
        except HyperSDKError as e:
            raise APIError(f"Failed to get logs: {e}", status_code=getattr(e, "status_code", None),
                           response=getattr(e, "response", None), route=f"GET {path}") from e
        if answer is None:
            return ""
        return answer if isinstance(answer, str) else _json.dumps(answer)

    def get_job_eta(self, job_id: str) -> str:
        """GET /jobs/eta/{id}: the estimated time remaining ("1m30s", or "unknown")."""
        answer = self._object("GET", f"/jobs/eta/{_quote(job_id)}")
        remaining = answer.get("estimated_remaining") or answer.get("eta")
        return str(remaining) if remaining else "Unknown"

    # ---- VMs ---------------------------------------------------------------------------------

    def _vm_request(self, vcenter_config: Optional[VCenterLike]) -> Dict[str, Any]:
        """The old SDK sent the vCenter configuration itself as the body of /vms/list; hypervisord
        takes {provider?, vcenter?, filter?}: a bare configuration is wrapped in `vcenter`."""
        config = _vcenter_dict(vcenter_config)
        if config is None:
            return {}
        if any(k in config for k in ("vcenter", "provider", "filter")) and "server" not in config:
            return config
        return {"vcenter": config}

    def list_vms(self, vcenter_config: Optional[VCenterLike] = None, provider: Optional[str] = None,
                 filter: Optional[Mapping[str, Any]] = None) -> List[Dict[str, Any]]:
        """POST /vms/list: the VMs (dicts: name, path, power_state, num_cpu, memory_mb, ...) of the
        vCenter given (a VCenterConfig or dict), or of the daemon's configured provider. filter:
        {datacenter?, power_state?, name_pattern?}."""
        request = self._vm_request(vcenter_config)
        if provider:
            request["provider"] = provider
        if filter:
            request["filter"] = dict(filter)
        return self._array("POST", "/vms/list", json=request, key="vms")

    def get_vm_info(self, vcenter_config: Optional[VCenterLike], vm_path: str) -> Dict[str, Any]:
        """POST /vms/info {vm_path, vcenter}: the VM (name, path, power_state, num_cpu, memory_mb, disks, nics, ...)."""
        request: Dict[str, Any] = {"vm_path": vm_path}
        config = _vcenter_dict(vcenter_config)
        if config is not None:
            request["vcenter"] = config
        return self._object("POST", "/vms/info", json=request)

    def shutdown_vm(self, vcenter_config: Optional[VCenterLike], vm_path: str) -> Dict[str, Any]:
        """POST /vms/shutdown (not served by hypervisord: APIError naming the route)."""
        return self._object("POST", "/vms/shutdown", json={"vcenter": _vcenter_dict(vcenter_config), "vm_path": vm_path},
                            served=False)

    # ---- schedules ---------------------------------------------------------------------------

    def list_schedules(self) -> List[ScheduledJob]:
        """GET /schedules."""
        return [self._model(ScheduledJob.from_dict, s, "GET /schedules")
                for s in self._array("GET", "/schedules", key="schedules")]

    def create_schedule(self, schedule: Union[ScheduledJob, Mapping[str, Any]]) -> ScheduledJob:
        """POST /schedules; returns the schedule as created (with its id and next_run)."""
        body = schedule.to_dict() if isinstance(schedule, ScheduledJob) else dict(schedule)
        return self._model(ScheduledJob.from_dict, self._object("POST", "/schedules", json=body), "POST /schedules")

    def get_schedule(self, schedule_id: str) -> ScheduledJob:
        """GET /schedules/{id}; JobNotFoundError when there is no such schedule."""
        path = f"/schedules/{_quote(schedule_id)}"
        return self._model(ScheduledJob.from_dict, self._object("GET", path), f"GET {path}")

    def update_schedule(self, schedule_id: str, schedule: Union[ScheduledJob, Mapping[str, Any]]) -> ScheduledJob:
        """PUT /schedules/{id}; returns the schedule as updated."""
        path = f"/schedules/{_quote(schedule_id)}"
        body = schedule.to_dict() if isinstance(schedule, ScheduledJob) else dict(schedule)
        return self._model(ScheduledJob.from_dict, self._object("PUT", path, json=body), f"PUT {path}")

    def delete_schedule(self, schedule_id: str) -> None:
        """DELETE /schedules/{id}."""
        self._request("DELETE", f"/schedules/{_quote(schedule_id)}")

    def enable_schedule(self, schedule_id: str) -> None:
        """POST /schedules/{id}/enable."""
        self._request("POST", f"/schedules/{_quote(schedule_id)}/enable")

    def disable_schedule(self, schedule_id: str) -> None:
        """POST /schedules/{id}/disable."""
        self._request("POST", f"/schedules/{_quote(schedule_id)}/disable")

    def trigger_schedule(self, schedule_id: str) -> Dict[str, Any]:
        """POST /schedules/{id}/trigger: runs the schedule's job now. Returns {schedule_id, job_id}
        (the old SDK returned None)."""
        return self._object("POST", f"/schedules/{_quote(schedule_id)}/trigger")

    # ---- webhooks ----------------------------------------------------------------------------

    def list_webhooks(self) -> List[Webhook]:
        """GET /webhooks (header values come back masked)."""
        return [self._model(Webhook.from_dict, w, "GET /webhooks") for w in self._array("GET", "/webhooks", key="webhooks")]

    def add_webhook(self, webhook: Union[Webhook, Mapping[str, Any]]) -> Webhook:
        """POST /webhooks. Returns the webhook as created, with its id (the old SDK returned None)."""
        body = webhook.to_dict() if isinstance(webhook, Webhook) else dict(webhook)
        answer = self._request("POST", "/webhooks", json=body)
        if isinstance(answer, Mapping) and answer.get("url"):
            return self._model(Webhook.from_dict, answer, "POST /webhooks")
        return webhook if isinstance(webhook, Webhook) else Webhook.from_dict(body)

    def test_webhook(self, url: str) -> Dict[str, Any]:
        """POST /webhooks/test: sends a test event to url. APIError when the delivery failed;
        otherwise returns {url, status_code, success, duration_ms} (the old SDK returned None)."""
        answer = self._object("POST", "/webhooks/test", json={"url": url})
        if answer.get("success") is False:
            detail = answer.get("error") or f"HTTP {answer.get('status_code')}"
            raise APIError(f"Webhook test failed: {url}: {detail}", status_code=answer.get("status_code"),
                           response=answer, route="POST /webhooks/test")
        return answer

    def delete_webhook(self, webhook_id: str) -> None:
        """DELETE /webhooks/{id}."""
        self._request("DELETE", f"/webhooks/{_quote(webhook_id)}")

    # ---- the old SDK's routes that hypervisord does not serve --------------------------------
    # Each sends what the old SDK sent; the service's 404 (or 405, or 501 for cost estimation)
    # becomes an APIError naming the route.

    def list_domains(self) -> List[Dict[str, Any]]:
        return self._array("GET", "/libvirt/domains", served=False)

    def get_domain(self, name: str) -> Dict[str, Any]:
        return self._object("GET", "/libvirt/domain", params={"name": name}, served=False)

    def start_domain(self, name: str) -> None:
        self._request("POST", "/libvirt/domain/start", json={"name": name}, served=False)

    def shutdown_domain(self, name: str) -> None:
        self._request("POST", "/libvirt/domain/shutdown", json={"name": name}, served=False)

    def list_snapshots(self, domain: str) -> List[Dict[str, Any]]:
        return self._array("GET", "/libvirt/snapshots", params={"domain": domain}, served=False)

    def create_snapshot(self, domain: str, name: str, description: Optional[str] = None) -> None:
        body: Dict[str, Any] = {"domain": domain, "name": name}
        if description:
            body["description"] = description
        self._request("POST", "/libvirt/snapshot/create", json=body, served=False)

    def estimate_cost(self, provider: str, region: str, storage_class: str, storage_gb: float, transfer_gb: float = 0,
                      requests: int = 0, duration_days: int = 30) -> Dict[str, Any]:
        return self._object("POST", "/cost/estimate", json={
            "provider": provider, "region": region, "storage_class": storage_class, "storage_gb": storage_gb,
            "transfer_gb": transfer_gb, "requests": requests, "duration_days": duration_days})

    def compare_providers(self, storage_gb: float, transfer_gb: float = 0, requests: int = 0,
                          duration_days: int = 30) -> Dict[str, Any]:
        return self._object("POST", "/cost/compare", json={
            "storage_gb": storage_gb, "transfer_gb": transfer_gb, "requests": requests,
            "duration_days": duration_days})

    def project_yearly_cost(self, provider: str, storage_class: str, storage_gb: float, transfer_gb: float = 0,
                            requests: int = 0) -> Dict[str, Any]:
        return self._object("POST", "/cost/project", json={
            "provider": provider, "storage_class": storage_class, "storage_gb": storage_gb,
            "transfer_gb": transfer_gb, "requests": requests, "duration_days": 30}, served=False)

    def estimate_export_size(self, disk_size_gb: float, format: str = "ova", include_snapshots: bool = False) -> Dict[str, Any]:
        return self._object("POST", "/cost/estimate-size", json={
            "disk_size_gb": disk_size_gb, "format": format, "include_snapshots": include_snapshots}, served=False)

    def create_advanced_schedule(self, name: str, schedule: str, job_template: Mapping[str, Any], description: str = "",
                                 advanced_config: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
        return self._object("POST", "/schedules/advanced/create", json={
            "name": name, "description": description, "schedule": schedule, "job_template": dict(job_template),
            "advanced_config": dict(advanced_config) if advanced_config is not None else None}, served=False)

    def get_dependency_status(self, job_id: str) -> Dict[str, Any]:
        return self._object("GET", "/schedules/dependencies", params={"job_id": job_id}, served=False)

    def get_retry_status(self, job_id: str) -> Dict[str, Any]:
        return self._object("GET", "/schedules/retry", params={"job_id": job_id}, served=False)

    def get_timewindow_status(self, job_id: str) -> Dict[str, Any]:
        return self._object("GET", "/schedules/timewindow", params={"job_id": job_id}, served=False)

    def get_job_queue_status(self) -> Dict[str, Any]:
        return self._object("GET", "/schedules/queue", served=False)

    def validate_schedule(self, name: str, schedule: str, job_template: Mapping[str, Any],
                          advanced_config: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
        return self._object("POST", "/schedules/validate", json={
            "name": name, "schedule": schedule, "job_template": dict(job_template),
            "advanced_config": dict(advanced_config) if advanced_config is not None else None}, served=False)

    # ---- changed block tracking --------------------------------------------------------------
    # The old SDK sent only {vm_path}: the daemon then uses its configured vCenter (providers.vsphere).
    # vcenter_config (an addition) names one, as the in-process service has none configured.

    def _cbt(self, path: str, vm_path: str, vcenter_config: Optional[VCenterLike]) -> Dict[str, Any]:
        body: Dict[str, Any] = {"vm_path": vm_path}
        config = _vcenter_dict(vcenter_config)
        if config is not None:
            body["vcenter"] = config
        return self._object("POST", path, json=body)

    def enable_cbt(self, vm_path: str, vcenter_config: Optional[VCenterLike] = None) -> Dict[str, Any]:
        """POST /cbt/enable: turns on changed block tracking of the VM."""
        return self._cbt("/cbt/enable", vm_path, vcenter_config)

    def disable_cbt(self, vm_path: str, vcenter_config: Optional[VCenterLike] = None) -> Dict[str, Any]:
        """POST /cbt/disable."""
        return self._cbt("/cbt/disable", vm_path, vcenter_config)

    def get_cbt_status(self, vm_path: str, vcenter_config: Optional[VCenterLike] = None) -> Dict[str, Any]:
        """POST /cbt/status: whether CBT is on, and the disks' change ids."""
        return self._cbt("/cbt/status", vm_path, vcenter_config)

    def analyze_incremental_export(self, vm_path: str, vcenter_config: Optional[VCenterLike] = None) -> Dict[str, Any]:
        """POST /incremental/analyze: whether the next backup can be incremental."""
        return self._cbt("/incremental/analyze", vm_path, vcenter_config)

    def convert_vm(self, source_path: str, output_path: str) -> str:
        answer = self._object("POST", "/convert/vm", json={"source_path": source_path, "output_path": output_path},
                              served=False)
        return str(answer.get("conversion_id", ""))

    def get_conversion_status(self, conversion_id: str) -> Dict[str, Any]:
        return self._object("GET", "/convert/status", params={"conversion_id": conversion_id}, served=False)

    def get_carbon_status(self, zone: str = "US-CAL-CISO", threshold: float = 200.0) -> CarbonStatus:
        answer = self._object("POST", "/carbon/status", json={"zone": zone, "threshold": threshold}, served=False)
        return self._model(CarbonStatus.from_dict, answer, "POST /carbon/status")

    def get_carbon_report(self, job_id: str, start_time: datetime, end_time: datetime, data_size_gb: float,
                          zone: str = "US-CAL-CISO") -> CarbonReport:
        answer = self._object("POST", "/carbon/report", json={
            "job_id": job_id, "start_time": start_time.isoformat(), "end_time": end_time.isoformat(),
            "data_size_gb": data_size_gb, "zone": zone}, served=False)
        return self._model(CarbonReport.from_dict, answer, "POST /carbon/report")

    def list_carbon_zones(self) -> List[CarbonZone]:
        zones = self._array("GET", "/carbon/zones", key="zones", served=False)
        return [self._model(CarbonZone.from_dict, z, "GET /carbon/zones") for z in zones]

    def estimate_carbon_savings(self, zone: str, data_size_gb: float, duration_hours: float = 2.0) -> CarbonEstimate:
        answer = self._object("POST", "/carbon/estimate", json={
            "zone": zone, "data_size_gb": data_size_gb, "duration_hours": duration_hours}, served=False)
        return self._model(CarbonEstimate.from_dict, answer, "POST /carbon/estimate")

    def submit_carbon_aware_job(self, job_def: JobDefinitionLike, carbon_zone: str = "US-CAL-CISO",
                                max_intensity: float = 200.0, max_delay_hours: float = 4.0) -> str:
        """POST /jobs/submit with the old SDK's carbon metadata (metadata.carbon_aware, carbon_zone,
        carbon_max_intensity, carbon_max_delay in nanoseconds); hypervisord keeps the metadata but
        does not delay the job."""
        body = _definition_dict(job_def)
        metadata = dict(body.get("metadata") or {})
        metadata.update({"carbon_aware": True, "carbon_zone": carbon_zone, "carbon_max_intensity": max_intensity,
                         "carbon_max_delay": int(max_delay_hours * 3600 * 1_000_000_000)})
        body["metadata"] = metadata
        return self.submit_job(body)

    # ---- lifetime ----------------------------------------------------------------------------

    def close(self) -> None:
        """Releases the transport (nothing is held between requests)."""
        self.session.close()
        self._transport.close()

    def __enter__(self) -> "HyperSDK":
        return self

    def __exit__(self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"HyperSDK({self.base_url!r})" if self.base_url else "HyperSDK() (in-process)"


# The old SDK's name for the same (synchronous) client.
AsyncHyperSDK = HyperSDK
