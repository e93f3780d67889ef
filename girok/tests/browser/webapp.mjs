// The girok web app in a real browser: Debian's Chromium driven by playwright-core, three
// people in three browser contexts against the real girok binary.
//
//   node webapp.mjs NODE_MODULES CHROMIUM BASE_URL SHOTS
//
// Register, create a room and add someone, chat both ways live, typing and unread counts,
// reply, edit and delete, read receipts; follow, post with an image, like and comment, the
// notification arriving live; search a message; a third person cannot open the room; random
// matching (join, matched → the match room, skip); an avatar; sessions; and a cut socket:
// messages sent meanwhile appear once, in order, after it comes back, and the app says it
// was offline. Each step leaves a screenshot in SHOTS. Prints PASS and exits 0, or the
// failure and exits 1.

import { createRequire } from 'node:module';
import path from 'node:path';

const [nodeModules, chromiumPath, base, shots] = process.argv.slice(2);
const require = createRequire(path.join(nodeModules, 'noop.js'));
const { chromium } = require('playwright-core');

// An 8×6 PNG, so the image pipeline has something real to decode.
const PNG = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAgAAAAGCAIAAABxZ0isAAAAY0lEQVR4nA3JIQEAQQhFQZKgCbEh0Jvky5cCTYgNgSbR3dgxM9w4xjVklPGMNcwCD05wAwUVvGDjj8STk9xESSUv2fxDuDjiCokST6z+aLw5zW3UVPOa7T8GH85wBw01vGGHD8x/PnFB5PEWAAAAAElFTkSuQmCC',
  'base64',
);

const browser = await chromium.launch({ executablePath: chromiumPath, args: ['--no-sandbox', '--disable-gpu'] });
const failTimer = setTimeout(() => {
  console.error('FAIL: the whole scenario took longer than 240 s');
  process.exit(1);
}, 240_000);

let step = 0;
async function shot(page, name) {
  step += 1;
  await page.screenshot({ path: path.join(shots, `${String(step).padStart(2, '0')}-${name}.png`), fullPage: true });
}

function log(message) {
  console.error(`[webapp] ${message}`);
}

async function person(name, { routeSocket = false } = {}) {
  const context = await browser.newContext({ baseURL: base, viewport: name === 'carol' ? { width: 390, height: 800 } : { width: 1100, height: 800 } });
  const socket = { blocked: false, pages: [] };
  if (routeSocket) {
    // Every /ws of this person passes through here, so the test can cut it like a network.
    await context.routeWebSocket(/\/ws$/, (ws) => {
      if (socket.blocked) {
        ws.close({ code: 4000, reason: 'network down (test)' });
        return;
      }
      ws.connectToServer();
      socket.pages.push(ws);
    });
  }
  const page = await context.newPage();
  page.on('console', (message) => {
    if (message.type() === 'error') log(`${name} console: ${message.text()}`);
  });
  page.on('pageerror', (error) => log(`${name} page error: ${error.message}`));
  await page.goto('/register');
  await page.getByLabel('Username').fill(name);
  await page.getByLabel('Display name').fill(name[0].toUpperCase() + name.slice(1));
  await page.getByLabel('Email').fill(`${name}@example.org`);
  await page.getByLabel('Password').fill('correct horse battery');
  await page.getByRole('button', { name: 'Create account' }).click();
  await page.getByRole('heading', { name: 'Chats' }).waitFor();
  return { context, page, socket };
}

const expectText = (locator, text) => locator.filter({ hasText: text }).first().waitFor();

/** One GraphQL call from `page` as its signed-in person (cookie + CSRF); throws on errors. */
async function graphqlAs(page, query, variables = {}) {
  return page.evaluate(
    async ({ query, variables }) => {
      const pair = document.cookie.split('; ').find((entry) => entry.startsWith('girok_csrf='));
      const response = await fetch('/graphql', {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-csrf-token': decodeURIComponent(pair.slice(11)) },
        body: JSON.stringify({ query, variables }),
      });
      const body = await response.json();
      if (body.errors) throw new Error(`${query}: ${JSON.stringify(body.errors)}`);
      return body.data;
    },
    { query, variables },
  );
}

try {
  const alice = await person('alice');
  const bob = await person('bob', { routeSocket: true });
  const carol = await person('carol');
  await shot(alice.page, 'registered');
  log('registered three people');

  // The session is a cookie the page's scripts cannot read; no token anywhere in storage.
  const cookies = await alice.context.cookies();
  const session = cookies.find((cookie) => cookie.name === 'girok_session');
  if (!session || !session.httpOnly) throw new Error(`no HttpOnly session cookie: ${JSON.stringify(cookies)}`);
  const visible = await alice.page.evaluate(() => document.cookie + JSON.stringify(localStorage) + JSON.stringify(sessionStorage));
  if (visible.includes(session.value)) throw new Error('the session token is visible to scripts');

  // A room with Bob in it.
  await alice.page.getByLabel('Title').fill('Trip planning');
  await alice.page.getByLabel('Members (usernames)').fill('bob');
  await alice.page.getByRole('button', { name: 'Create room' }).click();
  await alice.page.getByRole('heading', { name: 'Trip planning' }).waitFor();
  const roomUrl = alice.page.url();
  log(`room at ${roomUrl}`);

  // Bob's list shows the room live (he was added), then its unread count as Alice writes.
  await bob.page.getByRole('link', { name: /Trip planning/ }).waitFor();
  await alice.page.getByLabel('Message', { exact: true }).fill('hello bob');
  await alice.page.getByRole('button', { name: 'Send', exact: true }).click();
  await alice.page.getByRole('button', { name: 'Send', exact: true }).focus();
  await alice.page.getByLabel('Message', { exact: true }).fill('are you there?');
  await alice.page.getByLabel('Message', { exact: true }).press('Enter');
  await bob.page.locator('.badge.unread[data-count="2"]').waitFor();
  await shot(bob.page, 'unread-count');
  log('unread count 2 on bob\'s list');

  // Bob opens it: history, the count back to none, and typing seen by Alice.
  await bob.page.getByRole('link', { name: /Trip planning/ }).click();
  await expectText(bob.page.locator('.message .body'), 'hello bob');
  await expectText(bob.page.locator('.message .body'), 'are you there?');
  await bob.page.getByLabel('Message', { exact: true }).pressSequentially('hi al', { delay: 20 });
  await expectText(alice.page.locator('.typing'), 'Bob is typing');
  await shot(alice.page, 'typing');
  await bob.page.getByLabel('Message', { exact: true }).fill('hi alice');
  await bob.page.getByLabel('Message', { exact: true }).press('Enter');
  await expectText(alice.page.locator('.message .body'), 'hi alice');
  if ((await bob.page.locator('nav .badge').count()) !== 0) throw new Error('bob still has unread rooms after reading');
  log('chat both ways');

  // Alice reads Bob's message; Bob sees it seen. Bob replies to Alice's first message.
  await expectText(bob.page.locator('.message.mine .seen'), 'Seen by');
  const first = bob.page.locator('.message').filter({ hasText: 'hello bob' });
  await first.getByRole('button', { name: 'Reply' }).click();
  await bob.page.getByLabel('Message', { exact: true }).fill('yes, here');
  await bob.page.getByLabel('Message', { exact: true }).press('Enter');
  await expectText(alice.page.locator('.message').filter({ hasText: 'yes, here' }).locator('.reply-to'), 'hello bob');

  // Edit and delete reach the other side.
  const mine = alice.page.locator('.message').filter({ hasText: 'are you there?' });
  await mine.getByRole('button', { name: 'Edit' }).click();
  await alice.page.getByLabel('Edit message').fill('are you there, bob?');
  await alice.page.getByRole('button', { name: 'Save' }).click();
  await expectText(bob.page.locator('.message').filter({ hasText: '(edited)' }), 'are you there, bob?');
  await alice.page.locator('.message').filter({ hasText: 'hello bob' }).first().getByRole('button', { name: 'Delete' }).click();
  await bob.page.locator('.message .body', { hasText: /^hello bob$/ }).waitFor({ state: 'detached' });
  await shot(bob.page, 'edited-and-deleted');
  log('edit and delete');

  // A third person cannot open the room's address.
  await carol.page.goto(roomUrl);
  await carol.page.getByText('You are not a member of this room.').waitFor();
  if ((await carol.page.locator('.message').count()) !== 0) throw new Error('carol sees messages of a room she is not in');
  await shot(carol.page, 'not-a-member');
  log('carol kept out');

  // Feed: Bob follows Alice; Alice posts with an image; it reaches Bob's feed live.
  await bob.page.goto('/u/alice');
  await bob.page.getByRole('button', { name: 'Follow', exact: true }).click();
  await bob.page.getByRole('button', { name: 'Unfollow', exact: true }).waitFor();
  await expectText(bob.page.locator('.followers'), '1 followers');
  await bob.page.getByRole('link', { name: 'Feed' }).click();
  await bob.page.getByRole('heading', { name: 'Feed' }).waitFor();
  await alice.page.getByRole('link', { name: 'Feed' }).click();
  await alice.page.getByLabel('New post').fill('Our first trip photo');
  await alice.page.locator('.composer input[type=file]').setInputFiles({ name: 'photo.png', mimeType: 'image/png', buffer: PNG });
  await alice.page.locator('.composer img[alt="Image to post"]').waitFor();
  await alice.page.getByRole('button', { name: 'Post', exact: true }).click();
  const bobPost = bob.page.locator('.post').filter({ hasText: 'Our first trip photo' });
  await bobPost.waitFor();
  await bobPost.locator('img[alt="Image in the post"]').waitFor();
  if (!(await bobPost.locator('img[alt="Image in the post"]').evaluate((img) => img.complete && img.naturalWidth > 0))) {
    await bob.page.waitForFunction(() => {
      const img = document.querySelector('.post img[alt="Image in the post"]');
      return img && img.complete && img.naturalWidth > 0;
    });
  }
  await shot(bob.page, 'post-arrived');
  log('post with an image arrived live');

  // Bob likes and comments; Alice's badge counts both, live; her notifications list them.
  await bobPost.getByRole('button', { name: /Like/ }).click();
  await bobPost.getByRole('button', { name: /Liked/ }).waitFor();
  await bobPost.getByLabel('Write a comment').fill('Lovely!');
  await bobPost.getByRole('button', { name: 'Comment', exact: true }).click();
  await expectText(bobPost.locator('.comment'), 'Lovely!');
  await alice.page.locator('nav a[href="/notifications"] .badge[data-count="3"]').waitFor();
  await shot(alice.page, 'notification-badge');
  await alice.page.getByRole('link', { name: /Notifications/ }).click();
  await expectText(alice.page.locator('.notification'), 'liked your post');
  await expectText(alice.page.locator('.notification'), 'commented on your post');
  await expectText(alice.page.locator('.notification'), 'followed you');
  await alice.page.locator('nav a[href="/notifications"] .badge').waitFor({ state: 'detached' });
  // One more arrives while she is looking at the list.
  await bob.page.goto('/search');
  await bob.page.goto('/u/alice');
  await bob.page.getByRole('button', { name: 'Unfollow', exact: true }).click();
  await bob.page.getByRole('button', { name: 'Follow', exact: true }).click();
  await bob.page.getByRole('button', { name: 'Unfollow', exact: true }).waitFor();
  await alice.page.locator('.notification', { hasText: 'followed you' }).nth(1).waitFor();
  await shot(alice.page, 'notifications');
  log('notifications');

  // Search finds a message of Bob's room (the index may take a moment: ask again).
  await bob.page.goto('/search');
  await bob.page.getByLabel('Search for').fill('bob');
  await bob.page.getByLabel('Search in').selectOption('MESSAGE');
  for (let attempt = 0; ; attempt++) {
    await bob.page.getByRole('button', { name: 'Search', exact: true }).click();
    try {
      await bob.page.locator('.result', { hasText: 'are you there, bob?' }).waitFor({ timeout: 1_000 });
      break;
    } catch (error) {
      if (attempt >= 15) throw error;
    }
  }
  await shot(bob.page, 'search');
  await bob.page.locator('.result a', { hasText: 'are you there, bob?' }).click();
  await bob.page.getByRole('heading', { name: 'Trip planning' }).waitFor();
  log('search');

  // Eleven more rooms with Bob (more than girok lets one socket resume at once), all live on
  // his list; then the socket is cut: the app says so; what Alice sends meanwhile appears
  // once, in order; and every room is live again afterwards.
  const { user: bobUser } = await graphqlAs(alice.page, 'query { user(username: "bob") { id } }');
  const more = [];
  for (let i = 1; i <= 11; i++) {
    const { createRoom } = await graphqlAs(alice.page, 'mutation($t: String!, $m: [ID!]) { createRoom(title: $t, memberIds: $m) { id } }', {
      t: `Side room ${i}`,
      m: [bobUser.id],
    });
    more.push(createRoom.id);
  }
  await bob.page.getByRole('link', { name: 'Chats' }).click();
  await bob.page.getByRole('link', { name: 'Side room 11' }).waitFor();

  // Scroll-back: 45 messages in a side room; the room opens on the newest 30, and scrolling
  // to the top of the history brings the 15 before them, in order.
  for (let i = 1; i <= 45; i++) {
    await graphqlAs(alice.page, 'mutation($r: ID!, $b: String!) { sendMessage(roomId: $r, body: $b) { seq } }', { r: more[0], b: `history ${i}` });
  }
  await bob.page.getByRole('link', { name: /^Side room 1(\s|$)/ }).click();
  await expectText(bob.page.locator('.message .body'), 'history 45');
  const firstPage = await bob.page.locator('.message .body').count();
  if (firstPage !== 30) throw new Error(`the room opened with ${firstPage} messages, not the newest 30`);
  await bob.page.evaluate(() => window.scrollTo(0, 0));
  await bob.page.locator('.message .body').first().filter({ hasText: /^history 1$/ }).waitFor();
  const history = await bob.page.locator('.message .body').allTextContents();
  const wanted = Array.from({ length: 45 }, (_, i) => `history ${i + 1}`);
  if (JSON.stringify(history) !== JSON.stringify(wanted)) throw new Error(`scroll-back shows ${JSON.stringify(history)}`);
  await shot(bob.page, 'scroll-back');
  log('scroll-back');
  await bob.page.goto(roomUrl);
  await alice.page.goto(roomUrl);
  await alice.page.getByRole('heading', { name: 'Trip planning' }).waitFor();
  await bob.page.getByRole('heading', { name: 'Trip planning' }).waitFor();
  bob.socket.blocked = true;
  for (const ws of bob.socket.pages.splice(0)) await ws.close({ code: 4000, reason: 'network down (test)' });
  await bob.page.getByText('Offline: reconnecting').waitFor();
  await shot(bob.page, 'offline');
  const missed = ['while you were away 1', 'while you were away 2', 'while you were away 3'];
  for (const body of missed) {
    await alice.page.getByLabel('Message', { exact: true }).fill(body);
    await alice.page.getByLabel('Message', { exact: true }).press('Enter');
    await expectText(alice.page.locator('.message:not(.pending) .body'), body);
  }
  bob.socket.blocked = false;
  await bob.page.getByText('Offline: reconnecting').waitFor({ state: 'detached', timeout: 15_000 });
  await expectText(bob.page.locator('.message .body'), missed[2]);
  const bodies = await bob.page.locator('.message:not(.pending) .body').allTextContents();
  const expected = ['are you there, bob?', 'hi alice', 'yes, here', ...missed];
  if (JSON.stringify(bodies) !== JSON.stringify(expected)) {
    throw new Error(`after the reconnect bob sees ${JSON.stringify(bodies)}, not ${JSON.stringify(expected)}`);
  }
  await shot(bob.page, 'resumed');
  // Every room is live again: a message in each of the ten other side rooms (more than girok
  // lets a socket resume at once) raises Bob's badge to ten rooms; and the open room still
  // shows each message once, now that later frames came on the same socket.
  for (let i = 1; i < more.length; i++) {
    await graphqlAs(alice.page, 'mutation($r: ID!, $b: String!) { sendMessage(roomId: $r, body: $b) { seq } }', { r: more[i], b: `over here ${i + 1}` });
  }
  await bob.page.locator('nav a[href="/"] .badge[data-count="10"]').waitFor();
  const bodiesLater = await bob.page.locator('.message:not(.pending) .body').allTextContents();
  if (JSON.stringify(bodiesLater) !== JSON.stringify(expected)) {
    throw new Error(`later, bob sees ${JSON.stringify(bodiesLater)}, not ${JSON.stringify(expected)}`);
  }
  await bob.page.getByRole('link', { name: 'Chats' }).click();
  for (let i = 2; i <= 11; i++) {
    const item = bob.page.locator('ul.rooms li').filter({ has: bob.page.getByRole('link', { name: new RegExp(`^Side room ${i}(\\s|$)`) }) });
    await expectText(item, `over here ${i}`);
    await item.locator('.badge.unread[data-count="1"]').waitFor();
  }
  log('reconnect resumed without gaps or repeats; all twelve rooms live again');

  // Random matching: Alice and Carol both look; both land in the match room; Carol skips.
  await alice.page.getByRole('link', { name: 'Match' }).click();
  await alice.page.getByLabel('Interests (optional, up to 10)').fill('hiking');
  await alice.page.getByRole('button', { name: 'Find someone' }).click();
  await alice.page.getByText('Looking for someone').waitFor();
  await carol.page.getByRole('link', { name: 'Match' }).click();
  await carol.page.getByLabel('Interests (optional, up to 10)').fill('hiking');
  await carol.page.getByRole('button', { name: 'Find someone' }).click();
  await carol.page.getByText('A random match.').waitFor();
  await alice.page.getByText('A random match.').waitFor();
  if (carol.page.url() !== alice.page.url()) throw new Error('the two are in different match rooms');
  await carol.page.getByLabel('Message', { exact: true }).fill('hi stranger');
  await carol.page.getByLabel('Message', { exact: true }).press('Enter');
  await expectText(alice.page.locator('.message .body'), 'hi stranger');
  await shot(carol.page, 'matched');
  await carol.page.getByRole('button', { name: 'Skip and find someone else' }).click();
  await carol.page.getByText('Looking for someone').waitFor();
  // Alice, still on the match room's page, is told by the room's own topic that it ended.
  await alice.page.getByText('This match has ended.').waitFor();
  log('matching');

  // An avatar, and sessions: Alice signs in a second browser and revokes it from the first.
  await alice.page.getByRole('link', { name: 'Me' }).click();
  await alice.page.locator('input[type=file]').setInputFiles({ name: 'me.png', mimeType: 'image/png', buffer: PNG });
  await alice.page.getByText('Avatar updated').waitFor();
  await alice.page.locator('section img.avatar').waitFor();
  const second = await browser.newContext({ baseURL: base });
  const other = await second.newPage();
  await other.goto('/');
  await other.getByLabel('Username or email').fill('alice');
  await other.getByLabel('Password').fill('correct horse battery');
  await other.getByRole('button', { name: 'Sign in' }).click();
  await other.getByRole('heading', { name: 'Chats' }).waitFor();
  await alice.page.reload();
  await alice.page.locator('.sessions li').nth(1).waitFor();
  await shot(alice.page, 'sessions');
  await alice.page.locator('.sessions li').filter({ hasNotText: 'this browser' }).getByRole('button', { name: 'Revoke' }).click();
  await other.getByRole('heading', { name: 'Sign in to girok' }).waitFor();
  await alice.page.locator('.sessions li').nth(1).waitFor({ state: 'detached' });
  log('avatar and sessions');

  // More rooms than the list follows live: the 90 most recently active, then "Older rooms".
  for (let i = 1; i <= 95; i++) {
    await graphqlAs(carol.page, 'mutation($t: String!) { createRoom(title: $t) { id } }', { t: `Pile ${i}` });
  }
  await carol.page.goto('/');
  await carol.page.getByRole('link', { name: 'Pile 95' }).waitFor();
  const liveCount = await carol.page.locator('ul.rooms[aria-label="Your rooms"] > li').count();
  if (liveCount !== 90) throw new Error(`carol's list shows ${liveCount} rooms, not the 90 newest`);
  await carol.page.getByRole('button', { name: 'Older rooms' }).click();
  await carol.page.locator('ul.rooms[aria-label="Older rooms"]').getByRole('link', { name: /^Pile 1(\s|$)/ }).waitFor();
  const titles = await carol.page.locator('ul.rooms > li .room-title').allTextContents();
  const piles = titles.filter((title) => title.startsWith('Pile '));
  if (piles.length !== 95 || new Set(piles).size !== 95) throw new Error(`carol's rooms after "Older rooms": ${JSON.stringify(titles)}`);
  if ((await carol.page.getByRole('button', { name: 'Older rooms' }).count()) !== 0) throw new Error('"Older rooms" stays after the last page');
  log('older rooms');

  // Keyboard: Tab reaches the skip link first, and it is visible when focused.
  await alice.page.goto('/');
  await alice.page.getByRole('heading', { name: 'Chats' }).waitFor();
  await alice.page.keyboard.press('Tab');
  const focused = await alice.page.evaluate(() => document.activeElement?.textContent);
  if (focused !== 'Skip to content') throw new Error(`the first Tab stop is ${focused}`);
  await shot(carol.page, 'phone-width');

  console.log('PASS');
  clearTimeout(failTimer);
  await browser.close();
  process.exit(0);
} catch (error) {
  console.error(`FAIL: ${error.stack ?? error}`);
  for (const [index, context] of browser.contexts().entries()) {
    for (const page of context.pages()) {
      await page.screenshot({ path: path.join(shots, `failed-${index}.png`), fullPage: true }).catch(() => {});
    }
  }
  await browser.close().catch(() => {});
  process.exit(1);
}
