"""An app whose import fails, as an app with a bad setting or a typo does: the host must say why."""

raise RuntimeError("broken on purpose: this app cannot be indexed")
