"""What both processes import: the gateway listener and the function app, nothing one-sided.

The command registry (``registry``), the queue envelope (``envelope``), settings
(``settings``), queue clients (``queues``), the error split (``errors``), the User-Agent
(``useragent``) and telemetry setup (``telemetry`` with its provider, processors,
exporters and the local trace file). The function side's own machinery is in
``function_runtime/``, the listener's in ``gateway_listener/``.
"""
