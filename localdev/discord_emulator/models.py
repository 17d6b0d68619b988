"""The emulated world (bot, users, guilds, channels) and Discord JSON payload builders.

Payloads carry the fields discord.py 2.7.1 reads unconditionally when it builds its
models (Guild, Member, Message, Interaction), so an unmodified client accepts them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from localdev.discord_emulator.snowflake import SnowflakeGenerator, iso_now

JSON = dict[str, Any]

# Permission bits a freshly invited bot typically has (view, send, embed, history, ...).
BOT_PERMISSIONS = "2248473465835073"
ALL_PERMISSIONS = "2251799813685247"
# Application command option types, by the Python type of a value the caller passes.
_OPTION_TYPES: tuple[tuple[type, int], ...] = ((bool, 5), (int, 4), (float, 10))  # bool first: it is an int
STRING_OPTION = 3


@dataclass
class User:
    id: str
    username: str
    global_name: str | None = None
    bot: bool = False

    def payload(self) -> JSON:
        return {
            "id": self.id,
            "username": self.username,
            "global_name": self.global_name,
            "discriminator": "0",
            "avatar": None,
            "bot": self.bot,
            "system": False,
            "public_flags": 0,
            "flags": 0,
            "banner": None,
            "accent_color": None,
            "avatar_decoration_data": None,
        }


@dataclass
class Channel:
    id: str
    name: str
    guild_id: str
    position: int = 0

    def payload(self) -> JSON:
        return {
            "id": self.id,
            "type": 0,  # GUILD_TEXT
            "guild_id": self.guild_id,
            "name": self.name,
            "position": self.position,
            "permission_overwrites": [],
            "topic": None,
            "nsfw": False,
            "last_message_id": None,
            "rate_limit_per_user": 0,
            "parent_id": None,
            "flags": 0,
        }


@dataclass
class Guild:
    id: str
    name: str
    owner_id: str
    channels: list[Channel] = field(default_factory=list)
    role_ids: list[str] = field(default_factory=list)  # role_ids[0] is @everyone (= guild id)
    member_ids: list[str] = field(default_factory=list)

    @property
    def default_channel(self) -> Channel:
        return self.channels[0]


def role_payload(role_id: str, name: str, position: int, permissions: str) -> JSON:
    return {
        "id": role_id,
        "name": name,
        "color": 0,
        "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
        "hoist": False,
        "icon": None,
        "unicode_emoji": None,
        "position": position,
        "permissions": permissions,
        "managed": False,
        "mentionable": False,
        "flags": 0,
    }


def member_payload(user: User | None, roles: Sequence[str], *, permissions: str | None = None) -> JSON:
    out: JSON = {
        "roles": list(roles),
        "nick": None,
        "avatar": None,
        "banner": None,
        "joined_at": "2024-01-01T00:00:00.000000+00:00",
        "premium_since": None,
        "deaf": False,
        "mute": False,
        "flags": 0,
        "pending": False,
        "communication_disabled_until": None,
    }
    if user is not None:
        out["user"] = user.payload()
    if permissions is not None:
        out["permissions"] = permissions
    return out


class World:
    """Who and what exists: the bot, the human users, the guilds and their channels."""

    def __init__(self, ids: SnowflakeGenerator, *, guild_count: int = 1, bot_name: str = "LocalBot",
                 shard_count: int = 1) -> None:
        self.ids = ids
        self.application_id = ids.next()
        # Discord bots' user id equals their application id.
        self.bot = User(self.application_id, bot_name, None, bot=True)
        self.human = User(ids.next(), "you", "You")
        self.users: dict[str, User] = {self.bot.id: self.bot, self.human.id: self.human}
        self.guilds: dict[str, Guild] = {}
        self.channels: dict[str, Channel] = {}
        # Guild n lives on shard n % shard_count, so every shard has guilds when there are enough.
        for n in range(max(guild_count, 0)):
            self.add_guild("Local Guild" if n == 0 else f"Local Guild {n + 1}",
                           shard=(n % shard_count, shard_count) if shard_count > 1 else None)

    def add_guild(self, name: str, channel_names: tuple[str, ...] = ("general",), *,
                  shard: tuple[int, int] | None = None) -> Guild:
        """A new guild; ``shard=(id, count)`` picks its id so that it lives on that shard."""
        gid = self.ids.next_on_shard(*shard) if shard else self.ids.next()
        guild = Guild(id=gid, name=name, owner_id=self.human.id, role_ids=[gid, self.ids.next()])
        for pos, cname in enumerate(channel_names):
            ch = Channel(self.ids.next(), cname, gid, pos)
            guild.channels.append(ch)
            self.channels[ch.id] = ch
        guild.member_ids = [self.bot.id, self.human.id]
        self.guilds[gid] = guild
        return guild

    @property
    def default_guild(self) -> Guild:
        return next(iter(self.guilds.values()))

    def guild_of(self, data: JSON) -> str | None:
        """The guild a dispatch belongs to (by its guild_id, else its channel's guild); None for DMs."""
        gid = data.get("guild_id")
        if gid is None and (channel := self.channels.get(str(data.get("channel_id")))) is not None:
            gid = channel.guild_id
        return None if gid is None else str(gid)

    def user(self, user_id: str, username: str | None = None, global_name: str | None = None) -> User:
        """The user with this id, created on first use (tests invent authors freely)."""
        found = self.users.get(user_id)
        if found is None:
            found = self.users[user_id] = User(user_id, username or f"user{user_id[-4:]}", global_name)
        elif username:
            found.username = username
            found.global_name = global_name if global_name is not None else found.global_name
        return found

    def guild_payload(self, guild: Guild) -> JSON:
        """A GUILD_CREATE payload: the guild with channels, roles and (at least) the bot as member."""
        roles = [role_payload(guild.role_ids[0], "@everyone", 0, "1071698660929")]
        roles += [role_payload(r, f"role-{i}", i + 1, "0") for i, r in enumerate(guild.role_ids[1:])]
        members = [member_payload(self.users[uid], []) for uid in guild.member_ids]
        return {
            "id": guild.id,
            "name": guild.name,
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "banner": None,
            "description": None,
            "owner_id": guild.owner_id,
            "region": "deprecated",
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "nsfw_level": 0,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "preferred_locale": "en-US",
            "features": [],
            "system_channel_id": guild.default_channel.id if guild.channels else None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "public_updates_channel_id": None,
            "safety_alerts_channel_id": None,
            "vanity_url_code": None,
            "max_members": 500000,
            "max_video_channel_users": 25,
            "application_id": None,
            "roles": roles,
            "emojis": [],
            "stickers": [],
            "channels": [c.payload() for c in guild.channels],
            "threads": [],
            "members": members,
            "member_count": len(members),
            "presences": [],
            "voice_states": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
            "large": False,
            "unavailable": False,
            "lazy": True,
            "joined_at": "2024-01-01T00:00:00.000000+00:00",
            "premium_progress_bar_enabled": False,
        }

    def application_payload(self) -> JSON:
        return {
            "id": self.application_id,
            "name": self.bot.username,
            "icon": None,
            "description": "Discord emulator application",
            "summary": "",
            "type": None,
            "bot_public": True,
            "bot_require_code_grant": False,
            "verify_key": "0" * 64,
            "flags": 1 << 18 | 1 << 23,  # GATEWAY_MESSAGE_CONTENT (privileged intent granted), COMMAND_BADGE
            "owner": self.human.payload(),
            "team": None,
            "bot": self.bot.payload(),
            "rpc_origins": [],
            "interactions_endpoint_url": None,
            "redirect_uris": [],
            "tags": [],
        }

    def message_payload(
        self,
        *,
        author: User,
        channel_id: str,
        content: str,
        message_id: str | None = None,
        roles: Sequence[str] = (),
        nonce: str | int | None = None,
        extra: JSON | None = None,
    ) -> JSON:
        """A MESSAGE_CREATE-shaped message; guild messages carry ``guild_id`` and ``member``."""
        channel = self.channels.get(channel_id)
        msg: JSON = {
            "id": message_id or self.ids.next(),
            "type": 0,
            "channel_id": channel_id,
            "author": author.payload(),
            "content": content,
            "timestamp": iso_now(),
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "mention_channels": [],
            "attachments": [],
            "embeds": [],
            "components": [],
            "pinned": False,
            "flags": 0,
        }
        if nonce is not None:
            msg["nonce"] = nonce
        if channel is not None:
            msg["guild_id"] = channel.guild_id
            msg["member"] = member_payload(None, roles)
        if extra:
            msg.update(extra)
        return msg

    def interaction_payload(
        self,
        *,
        interaction_id: str,
        token: str,
        data: JSON,
        channel_id: str,
        guild_id: str | None,
        user: User,
        roles: Sequence[str] = (),
    ) -> JSON:
        """An INTERACTION_CREATE payload (APPLICATION_COMMAND) in a guild channel or a DM."""
        payload: JSON = {
            "id": interaction_id,
            "application_id": self.application_id,
            "type": 2,  # APPLICATION_COMMAND
            "data": data,
            "channel_id": channel_id,
            "token": token,
            "version": 1,
            "app_permissions": BOT_PERMISSIONS,
            "locale": "en-US",
            "entitlements": [],
            "attachment_size_limit": 10 * 1024 * 1024,
        }
        channel = self.channels.get(channel_id)
        if channel is not None:
            payload["channel"] = channel.payload()
        if guild_id is not None:
            data["guild_id"] = guild_id
            payload.update(guild_id=guild_id, guild_locale="en-US", context=0,
                           guild={"id": guild_id, "locale": "en-US", "features": []},
                           member=member_payload(user, roles, permissions=ALL_PERMISSIONS),
                           authorizing_integration_owners={"0": guild_id})
        else:
            payload.update(user=user.payload(), context=1, authorizing_integration_owners={"1": user.id},
                           member={"user": user.payload()})
        return payload


def option_type(value: Any) -> int:
    """The option type Discord would declare for ``value`` (when the command is not registered)."""
    return next((code for kind, code in _OPTION_TYPES if isinstance(value, kind)), STRING_OPTION)
