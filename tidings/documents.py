"""Documents: every GraphQL text parsed and validated once, with every limit, in one cache bounded by bytes.

Strawberry's `ParserCache` and `ValidationCache` key validation by the rule classes, and the depth and alias limiters
build new rule classes per request, so beside them nothing was ever reused. Here the rules are built once per schema,
the cache is keyed by the document's text, and only documents that passed every rule are kept: a stream of distinct
invalid documents costs CPU per request but pins no memory.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

from graphql import ASTValidationRule, DocumentNode, GraphQLError, GraphQLSyntaxError, parse
from graphql.validation import NoSchemaIntrospectionCustomRule, specified_rules
from strawberry.extensions import MaxAliasesLimiter, QueryDepthLimiter, SchemaExtension
from strawberry.schema.schema import validate_document

from tidings.errors import ErrorCode, client_error

if TYPE_CHECKING:
    from graphql import GraphQLSchema

T = TypeVar("T")

# A parsed document holds roughly 60-70 times its text in AST objects; the byte bound counts the text.
DEFAULT_MAX_ENTRIES = 512
DEFAULT_MAX_TEXT_BYTES = 256 * 1024  # of document text, so on the order of 16 MiB of ASTs at most


@dataclass(frozen=True, slots=True)
class DocumentRules:
    """What a document must pass: the specification's rules plus tidings' limits, as rule classes built once.

    Strawberry adds its own two (`MaybeNull`, `OneOf`) in `validate_document`.
    """

    max_tokens: int
    rules: tuple[type[ASTValidationRule], ...]

    @classmethod
    def build(cls, *, max_tokens: int, max_depth: int, max_aliases: int, introspection: bool) -> DocumentRules:
        # Both limiters follow fragment spreads, so fragments cannot multiply aliases or depth past the limits.
        rules: list[type[ASTValidationRule]] = [
            *specified_rules,
            *QueryDepthLimiter(max_depth=max_depth).validation_rules,
            *MaxAliasesLimiter(max_alias_count=max_aliases).validation_rules,
        ]
        if not introspection:
            rules.append(NoSchemaIntrospectionCustomRule)
        return cls(max_tokens=max_tokens, rules=tuple(rules))


class DocumentCache:
    """Parsed and validated documents by text, least recently used first out, bounded by entries and text bytes."""

    def __init__(
        self,
        schema: GraphQLSchema,
        rules: DocumentRules,
        *,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        max_text_bytes: int = DEFAULT_MAX_TEXT_BYTES,
    ) -> None:
        self._schema = schema
        self._rules = rules
        self._max_entries = max_entries
        self._max_text_bytes = max_text_bytes
        self._entries: OrderedDict[str, DocumentNode] = OrderedDict()
        self._text_bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def max_tokens(self) -> int:
        return self._rules.max_tokens

    @property
    def text_bytes(self) -> int:
        """Bytes of document text held (what the byte bound counts)."""
        return self._text_bytes

    def cached(self, query: str) -> DocumentNode | None:
        """The document for this text if it has passed validation before."""
        document = self._entries.get(query)
        if document is not None:
            self._entries.move_to_end(query)
        return document

    def parse(self, query: str) -> DocumentNode:
        """Parse with the token limit (counted while lexing, so a huge document costs nothing to refuse)."""
        return parse(query, max_tokens=self._rules.max_tokens)

    def validate(self, query: str, document: DocumentNode) -> list[GraphQLError]:
        """Validate against every rule (errors coded GRAPHQL_VALIDATION_FAILED); a document that passes is kept."""
        errors = validate_document(self._schema, document, self._rules.rules)
        if not errors:
            self._keep(query, document)
        return [client_error(error, ErrorCode.GRAPHQL_VALIDATION_FAILED) for error in errors]

    def load(self, query: str) -> tuple[DocumentNode | None, list[GraphQLError]]:
        """The validated document for a text, or the (coded) syntax or validation errors that refuse it."""
        document = self.cached(query)
        if document is not None:
            return document, []
        try:
            document = self.parse(query)
        except GraphQLSyntaxError as error:
            return None, [client_error(error, ErrorCode.GRAPHQL_PARSE_FAILED)]
        errors = self.validate(query, document)
        return (None, errors) if errors else (document, [])

    def _keep(self, query: str, document: DocumentNode) -> None:
        size = len(query.encode())
        if size > self._max_text_bytes or query in self._entries:
            return
        self._entries[query] = document
        self._text_bytes += size
        while len(self._entries) > self._max_entries or self._text_bytes > self._max_text_bytes:
            old_query, _ = self._entries.popitem(last=False)
            self._text_bytes -= len(old_query.encode())


class CachedDocuments(SchemaExtension):
    """Parse and validate through the process's `DocumentCache`: a repeated document is neither parsed nor validated.

    Strawberry builds this extension per request (a factory); the cache it uses is shared.
    """

    def __init__(self, cache: DocumentCache) -> None:
        super().__init__()
        self._cache = cache
        self._validated = False

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        # Strawberry parses what is not cached (inside its error handling, so a syntax error becomes the answer),
        # with the same token limit: counted while lexing, a huge document costs nothing to refuse.
        context.parse_options["max_tokens"] = self._cache.max_tokens
        if context.query:
            document = self._cache.cached(context.query)
            if document is not None:
                context.graphql_document = document
                self._validated = True
        yield
        for error in context.pre_execution_errors or ():
            if isinstance(error, GraphQLSyntaxError):  # the same object Strawberry answers with
                client_error(error, ErrorCode.GRAPHQL_PARSE_FAILED)

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        if self._validated:
            context.pre_execution_errors = []
        elif context.query and context.graphql_document is not None:
            context.pre_execution_errors = self._cache.validate(context.query, context.graphql_document)
        yield


class CompiledDocuments(Generic[T]):
    """What a fast path compiled of each (document text, operation name), least recently used first out.

    `compile` returns None for a document that needs the standard path; that answer is remembered too.
    """

    def __init__(self, compile: Callable[[DocumentNode, str | None], T | None], *, max_entries: int) -> None:
        self._compile = compile
        self._max_entries = max_entries
        self._entries: OrderedDict[tuple[str, str | None], T | None] = OrderedDict()

    def get(self, query: str, operation_name: str | None, document: DocumentNode) -> T | None:
        key = (query, operation_name)
        if key in self._entries:
            self._entries.move_to_end(key)
            return self._entries[key]
        compiled = self._compile(document, operation_name)
        self._entries[key] = compiled
        if len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)
        return compiled
