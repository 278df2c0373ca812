"""Provider names as users write them, mapped onto genai-prices' provider ids."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Final

# Names people and SDKs use that genai-prices' own `provider_match` rules do not resolve, or
# resolve to a different provider than the user means (`azure_openai` would match `openai`).
PROVIDER_ALIASES: Final[dict[str, str]] = {
    # OpenTelemetry GenAI semantic conventions' gen_ai.provider.name values.
    "gcp.gemini": "google",
    "gcp.vertex_ai": "google",
    "gcp.gen_ai": "google",
    "aws.bedrock": "aws",
    "azure.ai.openai": "azure",
    "azure.ai.inference": "azure",
    "mistral_ai": "mistral",
    "x_ai": "x-ai",
    "google": "google",
    "gemini": "google",
    "google-gla": "google",
    "google-vertex": "google",
    "vertex": "google",
    "vertex_ai": "google",
    "vertexai": "google",
    "googleai": "google",
    "azure": "azure",
    "azure_openai": "azure",
    "azure-openai": "azure",
    "azureopenai": "azure",
    "azure_ai": "azure",
    "bedrock": "aws",
    "aws": "aws",
    "aws-bedrock": "aws",
    "amazon": "aws",
    "anthropic": "anthropic",
    "claude": "anthropic",
    "openai": "openai",
    "mistral": "mistral",
    "mistralai": "mistral",
    "mistral-ai": "mistral",
    "xai": "x-ai",
    "x-ai": "x-ai",
    "grok": "x-ai",
    "together": "together",
    "together_ai": "together",
    "together-ai": "together",
    "togetherai": "together",
    "fireworks": "fireworks",
    "fireworks_ai": "fireworks",
    "fireworks-ai": "fireworks",
    "deepseek": "deepseek",
    "groq": "groq",
    "cohere": "cohere",
    "perplexity": "perplexity",
    "openrouter": "openrouter",
    "moonshot": "moonshotai",
    "moonshotai": "moonshotai",
    "kimi": "moonshotai",
    "meta": "meta",
    "meta_llama": "meta",
    "cerebras": "cerebras",
    "databricks": "databricks",
}

# Providers whose batch API bills at half the standard rate. Others get no batch discount
# unless an override entry sets `batch_multiplier`.
BATCH_MULTIPLIERS: Final[dict[str, Decimal]] = {
    provider: Decimal("0.5")
    for provider in ("openai", "anthropic", "google", "aws", "azure", "mistral", "groq", "together", "x-ai")
}
NO_BATCH_DISCOUNT: Final = Decimal(1)


def canonical_provider(name: str, known_ids: Iterable[str] = ()) -> str | None:
    """Map a provider name to a catalog provider id: aliases, then `known_ids`; else None."""
    key = name.strip().lower()
    if key in PROVIDER_ALIASES:
        return PROVIDER_ALIASES[key]
    known = set(known_ids)
    if key in known:
        return key
    swapped = key.replace("_", "-")
    if swapped in known:
        return swapped
    return None


def batch_multiplier_for(provider_id: str) -> Decimal:
    """The default batch multiplier of a provider (0.5 with a batch API, else 1)."""
    return BATCH_MULTIPLIERS.get(provider_id, NO_BATCH_DISCOUNT)
