"""Every table of the service, collected for Alembic (importing each domain's models)."""

from shelfkeeper.audit import models as audit_models
from shelfkeeper.auth import models as auth_models
from shelfkeeper.db.metadata import metadata
from shelfkeeper.event import models as event_models
from shelfkeeper.event import webhook_models
from shelfkeeper.inventory import models as inventory_models
from shelfkeeper.kit import models as kit_models
from shelfkeeper.location import models as location_models
from shelfkeeper.order import models as order_models
from shelfkeeper.privacy import models as privacy_models
from shelfkeeper.tenant import models as tenant_models

__all__ = [
    "audit_models",
    "auth_models",
    "event_models",
    "inventory_models",
    "kit_models",
    "location_models",
    "metadata",
    "order_models",
    "privacy_models",
    "tenant_models",
    "webhook_models",
]
