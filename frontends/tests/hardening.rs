//! Hardening through the real binary: requests that are cheap to send but could be costly to
//! serve are refused cheaply, and the server keeps answering everyone else meanwhile.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::Server;
use common::sockets::graphql_ws;
use serde_json::{Value, json};
use std::time::Duration;

/// A GraphQL document of `levels` fragments, each spreading the one before twice: about 1 KB
/// that validation would walk 2^levels fields deep.
fn fragment_bomb(levels: usize) -> String {
    let mut text = format!("query {{ ...F{levels} }}\nfragment F0 on Query {{ __typename }}\n");
    for level in 1..=levels {
        let before = level - 1;
        text.push_str(&format!(
            "fragment F{level} on Query {{ ...F{before} ...F{before} }}\n"
        ));
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fragment_bombs_are_refused_before_validation_while_healthz_answers() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let bomb = fragment_bomb(30);
    // Several at once: on a server that validated them, two were enough to stop every
    // worker (for minutes at this size).
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let bombs: Vec<_> = (0..4)
        .map(|_| {
            let (client, url, bomb) = (client.clone(), server.url("/graphql"), bomb.clone());
            tokio::spawn(async move {
                let response = client
                    .post(url)
                    .json(&json!({ "query": bomb }))
                    .send()
                    .await
                    .expect("an answer within 20 s");
                let status = response.status().as_u16();
                (status, response.json::<Value>().await.unwrap())
            })
        })
        .collect();
    for _ in 0..5 {
        let healthz = client.get(server.url("/healthz")).send().await.unwrap();
        assert_eq!(healthz.status().as_u16(), 200);
    }
    for bomb in bombs {
        let (status, body) = bomb.await.unwrap();
        assert_eq!(status, 400, "{body}");
        assert_eq!(
            body["errors"][0]["extensions"]["code"],
            "GRAPHQL_DOCUMENT_TOO_LARGE"
        );
    }

    // The same document over /graphql/ws: its subscription's one result is the error
    // (async-graphql answers a refused operation with `next` carrying errors).
    let token = server.sign_in("bomber").await;
    let (mut socket, ack) = graphql_ws(
        &server,
        json!({ "authorization": format!("Bearer {token}") }),
    )
    .await;
    assert_eq!(ack["type"], "connection_ack", "{ack}");
    let subscription = bomb.replace("query {", "subscription {");
    socket.subscribe("1", &subscription, json!({})).await;
    let answer = socket.next_for("1").await;
    assert_eq!(answer["type"], "next", "{answer}");
    assert_eq!(
        answer["payload"]["errors"][0]["extensions"]["code"], "GRAPHQL_DOCUMENT_TOO_LARGE",
        "{answer}"
    );

    // Too many fragment definitions, each small, are refused too; an ordinary document with
    // a few fragments still runs.
    let many: String = (0..200)
        .map(|i| format!("fragment G{i} on Query {{ __typename }}\n"))
        .collect();
    let (status, body) = server
        .gql_status(&format!("query {{ ...G0 }}\n{many}"), json!({}))
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["errors"][0]["extensions"]["code"],
        "GRAPHQL_DOCUMENT_TOO_LARGE"
    );
    let data = server
        .gql(
            "query { ...A } fragment A on QueryRoot { me { ...B } } fragment B on User { id username }",
            json!({}),
        )
        .await;
    assert_eq!(data["me"]["username"], "bomber");
}
