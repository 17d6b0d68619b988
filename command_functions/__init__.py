"""One module per command, each a ``func.Blueprint`` with a queue trigger on ``cmd-<command>``.

Every trigger decodes nothing itself: it hands the QueueMessage to
``function_runtime.invocation.invoke`` with the module's plain ``handle`` function.
"""
