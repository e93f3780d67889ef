// The girok web app: the shell (navigation, the offline banner, the unread badges) and the
// screens by route. Signed out, only the sign-in and registration screens exist.

import { render } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import './style.css';
import { describe } from './api';
import { live } from './live';
import { match, navigate, onLinkClick, usePath } from './router';
import { me, resume, rooms, unreadNotifications } from './session';
import { useCell } from './store';
import { SignIn, Register } from './screens/auth';
import { RoomList } from './screens/rooms';
import { RoomScreen } from './screens/room';
import { Feed, PostScreen } from './screens/feed';
import { Profile } from './screens/profile';
import { Notifications } from './screens/notifications';
import { Search } from './screens/search';
import { Matching } from './screens/matching';
import { MySettings } from './screens/settings';

function Offline() {
  const status = useCell(live.status);
  if (status === 'online' || status === 'signed-out') return null;
  return (
    <div class="banner" role="status" aria-live="polite">
      {status === 'connecting' ? 'Connecting…' : 'Offline: reconnecting… Messages you send will go out when girok is back.'}
    </div>
  );
}

function Nav({ path }: { path: string }) {
  const notes = useCell(unreadNotifications);
  const list = useCell(rooms);
  const unreadRooms = (list ?? []).filter((room) => room.unreadCount > 0).length;
  const link = (href: string, label: string, badge = 0, badgeLabel = '') => {
    const current = href === '/' ? path === '/' || path.startsWith('/rooms') : path.startsWith(href);
    return (
      <a href={href} aria-current={current ? 'page' : undefined}>
        {label}
        {badge > 0 && (
          <span class="badge" data-count={badge}>
            {badge}
            <span class="visually-hidden"> {badgeLabel}</span>
          </span>
        )}
      </a>
    );
  };
  return (
    <nav aria-label="Main">
      <a class="brand" href="/">
        girok
      </a>
      {link('/', 'Chats', unreadRooms, 'rooms with unread messages')}
      {link('/feed', 'Feed')}
      {link('/notifications', 'Notifications', notes, 'unread notifications')}
      {link('/search', 'Search')}
      {link('/matching', 'Match')}
      {link('/me', 'Me')}
    </nav>
  );
}

/** After moving to another screen, focus goes to its heading (screen readers announce it). */
function useFocusOnNavigation(path: string) {
  const first = useRef(true);
  useEffect(() => {
    if (first.current) {
      first.current = false;
      return;
    }
    const heading = document.querySelector<HTMLElement>('#content h1');
    if (heading) {
      heading.tabIndex = -1;
      heading.focus({ preventScroll: true });
    }
  }, [path]);
}

function Screen({ path }: { path: string }) {
  let params: Record<string, string> | null;
  if (path === '/' || path === '/rooms') return <RoomList />;
  if ((params = match('/rooms/:id', path))) return <RoomScreen key={params.id} id={params.id} />;
  if (path === '/feed') return <Feed />;
  if ((params = match('/posts/:id', path))) return <PostScreen key={params.id} id={params.id} />;
  if ((params = match('/u/:username', path))) return <Profile key={params.username} username={params.username} />;
  if (path === '/notifications') return <Notifications />;
  if (path === '/search') return <Search />;
  if (path === '/matching') return <Matching />;
  if (path === '/me') return <MySettings />;
  return (
    <main>
      <h1>Not found</h1>
      <p>
        There is nothing at this address. <a href="/">Back to your chats</a>.
      </p>
    </main>
  );
}

function App() {
  const path = usePath();
  const user = useCell(me);
  const [failure, setFailure] = useState<unknown>(null);
  useFocusOnNavigation(path);
  useEffect(() => {
    resume().catch(setFailure);
  }, []);
  useEffect(() => {
    document.addEventListener('click', onLinkClick);
    return () => document.removeEventListener('click', onLinkClick);
  }, []);
  useEffect(() => {
    if (user === null && path !== '/register' && path !== '/signin') navigate('/signin', true);
    if (user && (path === '/signin' || path === '/register')) navigate('/', true);
  }, [user, path]);
  if (failure) {
    return (
      <main>
        <h1>girok cannot be reached</h1>
        <p role="alert">{describe(failure)}</p>
        <button onClick={() => location.reload()}>Try again</button>
      </main>
    );
  }
  if (user === undefined) return <p class="muted">Loading…</p>;
  if (user === null) return path === '/register' ? <Register /> : <SignIn />;
  return (
    <>
      <a class="skip" href="#content">
        Skip to content
      </a>
      <Nav path={path} />
      <Offline />
      <div id="content" tabIndex={-1}>
        <Screen path={path} />
      </div>
    </>
  );
}

const root = document.getElementById('app');
if (root) render(<App />, root);
