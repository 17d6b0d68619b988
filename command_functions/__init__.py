"""One module per command, named after it, each holding a plain ``handle(ctx) -> str``.

No module declares its own trigger: function_app.py builds one for every registry row
(``function_runtime.triggers.command_blueprint``), which hands the QueueMessage to
``function_runtime.invocation.invoke`` with the module's ``handle``.
"""
