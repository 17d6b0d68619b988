"""The language worker process the local Functions host starts for each instance.

On Azure, the platform starts a Python worker next to the Functions host; for Python 3.13 that
worker is a thin gRPC client (Microsoft's "proxy worker") and everything that indexes, binds and
invokes the app is ``azure_functions_runtime``, the library the app pins in requirements.txt. This
package plays only the thin part: it connects to the host's ``FunctionRpc.EventStream``, passes
each request to the library and sends back what the library answers, plus the app's log records
as ``RpcLog`` messages. It converts no trigger data and builds no response itself.
"""
