"""The AWS Lambda entrypoints: composition only.

Handlers (the ``Handler`` setting of each function in ``infra/template.yaml``):

- ``mailblast.entrypoints.aws.api.handler``: the REST API (API Gateway proxy events);
- ``mailblast.entrypoints.aws.steps.<step>``: one per Task state of the import and send
  state machines;
- ``mailblast.entrypoints.aws.sender.handler``: the SQS-triggered sender;
- ``mailblast.entrypoints.aws.dlq.handler``: the dead-letter queue handler.

`mailblast.entrypoints.aws.compose` is their one composition root. This package imports
nothing heavy, so each handler module stays quick to import on a cold start.
"""
