"""Password and secret hashing: argon2id, verified off the event loop with bounded concurrency.

Each verification costs `memory_kib` of RAM; the semaphore caps how many run at once so a burst of
logins cannot push the process past its memory budget.
"""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError


class Passwords:
    def __init__(self, time_cost: int, memory_kib: int, parallelism: int, concurrency: int = 2):
        self.hasher = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism, type=Type.ID
        )
        self._slots = asyncio.Semaphore(concurrency)

    def hash_sync(self, secret: str) -> str:
        return self.hasher.hash(secret)

    async def hash(self, secret: str) -> str:
        async with self._slots:
            return await asyncio.to_thread(self.hasher.hash, secret)

    def _verify(self, stored: str, secret: str) -> bool:
        try:
            return self.hasher.verify(stored, secret)
        except (VerificationError, InvalidHashError):
            return False

    async def verify(self, stored: str | None, secret: str) -> bool:
        """True if `secret` matches; a missing hash still costs a hash, so timing does not tell."""
        async with self._slots:
            if stored is None:
                await asyncio.to_thread(self.hasher.hash, secret)
                return False
            return await asyncio.to_thread(self._verify, stored, secret)
