// Random matching: join the queue with optional interest tags and a language, see how many
// are waiting, leave; a match opens its chat room (the session follows the `matching` topic
// wherever the app is), where Skip ends it and queues again.

import { useEffect, useState } from 'preact/hooks';
import { gql } from '../api';
import { currentMatch, matchingArrived } from '../session';
import { useCell } from '../store';
import { ErrorLine, Loading } from '../ui';

type Status = {
  waiting: number;
  queued: { ticketId: string; since: string; tags: string[]; language: string | null } | null;
  match: { roomId: string; partner: { displayName: string } } | null;
};

const STATUS = '{ waiting queued { ticketId since tags language } match { roomId partner { displayName } } }';

export function Matching() {
  const [status, setStatus] = useState<Status | null>(null);
  const [tags, setTags] = useState('');
  const [language, setLanguage] = useState('');
  const [error, setError] = useState<unknown>(null);
  const arrived = useCell(matchingArrived);
  const match = useCell(currentMatch);

  const refresh = () =>
    gql<{ matchingStatus: Status }>(`{ matchingStatus ${STATUS} }`)
      .then((data) => setStatus(data.matchingStatus))
      .catch(setError);
  useEffect(() => void refresh(), [arrived]);

  const join = async (event: Event) => {
    event.preventDefault();
    setError(null);
    try {
      const { joinMatching } = await gql<{ joinMatching: { status: Status } }>(
        `mutation($t: [String!]!, $l: String) { joinMatching(tags: $t, language: $l) { status ${STATUS} } }`,
        { t: tags.split(/[\s,]+/).filter(Boolean), l: language || null },
      );
      setStatus(joinMatching.status);
    } catch (failure) {
      setError(failure);
    }
  };
  const leave = async () => {
    try {
      await gql('mutation { leaveMatching }');
      await refresh();
    } catch (failure) {
      setError(failure);
    }
  };

  return (
    <main>
      <h1>Meet someone new</h1>
      <ErrorLine error={error} />
      {status === null ? (
        <Loading />
      ) : match ? (
        <p role="status">
          You are matched with {match.partnerName}. <a href={`/rooms/${match.roomId}`}>Open the chat</a>
        </p>
      ) : status.queued ? (
        <div>
          <p role="status">Looking for someone…</p>
          <p class="muted">{status.waiting} waiting</p>
          <button onClick={leave}>Stop looking</button>
        </div>
      ) : (
        <form onSubmit={join} class="card">
          <p class="field">
            <label for="match-tags">Interests (optional, up to 10)</label>
            <input id="match-tags" value={tags} placeholder="music, hiking" onInput={(event) => setTags(event.currentTarget.value)} />
          </p>
          <p class="field">
            <label for="match-language">Language (optional)</label>
            <input id="match-language" value={language} placeholder="en" maxLength={16} onInput={(event) => setLanguage(event.currentTarget.value)} />
          </p>
          <p class="muted">{status.waiting} people waiting now.</p>
          <button type="submit">Find someone</button>
        </form>
      )}
    </main>
  );
}
