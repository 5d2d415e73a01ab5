"""The AWS adapters (aioboto3): S3 `BlobStore`, SES v2 `Mailer`, SQS `BatchQueue` and
Step Functions `WorkflowEngine`, sharing one `AwsClients` built from `AwsSettings`.

Nothing here connects or reads the environment at import time: an entrypoint calls
`AwsSettings.from_env(os.environ)` once, makes one `AwsClients` on its event loop and
hands it to the adapters.
"""

from __future__ import annotations

from mailblast.adapters.aws.s3 import S3BlobStore
from mailblast.adapters.aws.ses import SesMailer
from mailblast.adapters.aws.session import AwsClients
from mailblast.adapters.aws.settings import AwsSettings
from mailblast.adapters.aws.sfn import StepFunctionsWorkflowEngine
from mailblast.adapters.aws.sqs import SqsBatchQueue

__all__ = [
    "AwsClients",
    "AwsSettings",
    "S3BlobStore",
    "SesMailer",
    "SqsBatchQueue",
    "StepFunctionsWorkflowEngine",
]
