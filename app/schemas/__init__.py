"""Every request and response shape, written once (pydantic). The JSON routes take and
return these; the pages read their query strings into the same models; saved runs store
them. Nothing here does work: limits that depend on settings are checked where the work
starts (`app.engine`), and described in the field's documentation."""
