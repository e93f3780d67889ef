// Search over posts, people and the messages of my rooms (girok's full-text index), with
// the query in the address so a search can be shared and the back button works.

import { useEffect, useState } from 'preact/hooks';
import { gql } from '../api';
import { navigate } from '../router';
import { ErrorLine, PersonLink, Time } from '../ui';

type Result =
  | { __typename: 'Post'; id: string; content: string; createdAt: string; author: { username: string; name: string } }
  | { __typename: 'Author'; id: string; username: string; name: string }
  | { __typename: 'Message'; id: string; roomId: string; senderId: string | null; body: string; createdAt: string };

const KINDS = [
  ['', 'Everything'],
  ['POST', 'Posts'],
  ['USER', 'People'],
  ['MESSAGE', 'My messages'],
];

export function Search() {
  const params = new URLSearchParams(location.search);
  const [query, setQuery] = useState(params.get('q') ?? '');
  const [kind, setKind] = useState(params.get('kind') ?? '');
  const [results, setResults] = useState<Result[] | null>(null);
  const [after, setAfter] = useState<string | null>(null);
  const [more, setMore] = useState(false);
  const [error, setError] = useState<unknown>(null);

  const run = async (q: string, k: string, from: string | null) => {
    setError(null);
    try {
      const { search } = await gql<{ search: { results: Result[]; pageInfo: { hasNextPage: boolean; endCursor: string | null } } }>(
        `query($q: String!, $k: SearchKind, $a: String) { search(query: $q, kind: $k, first: 20, after: $a) {
          results { __typename
            ... on Post { id content createdAt author { username name } }
            ... on Author { id username name }
            ... on Message { id roomId senderId body createdAt } }
          pageInfo { hasNextPage endCursor } } }`,
        { q, k: k || null, a: from },
      );
      setResults((current) => (from === null ? search.results : [...(current ?? []), ...search.results]));
      setAfter(search.pageInfo.endCursor);
      setMore(search.pageInfo.hasNextPage);
    } catch (failure) {
      setError(failure);
    }
  };

  useEffect(() => {
    if (query) void run(query, kind, null);
  }, []);

  const submit = (event: Event) => {
    event.preventDefault();
    navigate(`/search?q=${encodeURIComponent(query)}${kind ? `&kind=${kind}` : ''}`, true);
    void run(query, kind, null);
  };

  return (
    <main>
      <h1>Search</h1>
      <form role="search" onSubmit={submit} class="search">
        <label for="search-query">Search for</label>
        <input id="search-query" type="search" value={query} required maxLength={256} onInput={(event) => setQuery(event.currentTarget.value)} />
        <label for="search-kind">Search in</label>
        <select id="search-kind" value={kind} onChange={(event) => setKind(event.currentTarget.value)}>
          {KINDS.map(([value, label]) => (
            <option key={value} value={value}>
              {label}
            </option>
          ))}
        </select>
        <button type="submit">Search</button>
      </form>
      <ErrorLine error={error} />
      {results && results.length === 0 && <p class="muted">No results.</p>}
      {results && (
        <ul class="results" aria-label="Results">
          {results.map((result) => (
            <li key={`${result.__typename}-${result.id}`} class="result">
              {result.__typename === 'Post' && (
                <>
                  <span class="kind">Post</span> <a href={`/posts/${result.id}`}>{result.content.slice(0, 140)}</a> by{' '}
                  <a href={`/u/${result.author.username}`}>{result.author.name}</a> <Time at={result.createdAt} />
                </>
              )}
              {result.__typename === 'Author' && (
                <>
                  <span class="kind">Person</span> <a href={`/u/${result.username}`}>{result.name}</a> <span class="muted">@{result.username}</span>
                </>
              )}
              {result.__typename === 'Message' && (
                <>
                  <span class="kind">Message</span> <a href={`/rooms/${result.roomId}`}>{result.body.slice(0, 140)}</a> from <PersonLink id={result.senderId} />{' '}
                  <Time at={result.createdAt} />
                </>
              )}
            </li>
          ))}
        </ul>
      )}
      {more && (
        <button class="secondary" onClick={() => run(query, kind, after)}>
          More results
        </button>
      )}
    </main>
  );
}
