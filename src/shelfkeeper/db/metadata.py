"""The schema's single declaration, shared by every domain's `models.py`.

The service queries through asyncpg with explicit SQL; these SQLAlchemy Core tables exist
so that Alembic can compare the migrations with the declared schema (`alembic check`).
"""

from sqlalchemy import MetaData

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)
