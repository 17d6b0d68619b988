"""The Functions worker protocol (``FunctionRpc.proto``), compiled for this machine's protobuf.

Both sides of the local host/worker pair use it: the host (``localdev.functions_host``) serves the
``FunctionRpc.EventStream`` gRPC stream, the worker (``localdev.functions_worker``) connects to it
and hands each request to Microsoft's ``azure_functions_runtime``, which builds its answers from the
module :func:`protos` returns (it is what the worker library calls ``protos``).

The ``.proto`` is compiled on first use with ``grpc_tools.protoc`` into ``.localdev/functions_rpc/``
(keyed by its hash, so an edit recompiles and concurrent processes never see a half-written file).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import sys
import tempfile
from pathlib import Path
from types import ModuleType

PROTO = Path(__file__).with_name("FunctionRpc.proto")
SERVICE = "AzureFunctionsRpcMessages.FunctionRpc"
EVENT_STREAM = f"/{SERVICE}/EventStream"
_CACHE = Path(__file__).resolve().parents[2] / ".localdev" / "functions_rpc"


def _compile(out_dir: Path) -> None:
    from importlib.resources import files

    from grpc_tools import protoc

    include = str(files("grpc_tools") / "_proto")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=".tmp-"))
    args = ["protoc", f"-I{PROTO.parent}", f"-I{include}", f"--python_out={tmp}", str(PROTO)]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc could not compile {PROTO}")
    try:
        os.rename(tmp, out_dir)  # atomic: another process may have won the race, which is fine
    except OSError:
        if not (out_dir / "FunctionRpc_pb2.py").exists():
            raise


@functools.cache
def protos() -> ModuleType:
    """The compiled message classes (``StreamingMessage``, ``TypedData``, ``RpcHttp``, ...)."""
    digest = hashlib.sha256(PROTO.read_bytes()).hexdigest()[:16]
    out_dir = _CACHE / digest
    path = out_dir / "FunctionRpc_pb2.py"
    if not path.exists():
        _compile(out_dir)
    spec = importlib.util.spec_from_file_location("FunctionRpc_pb2", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
